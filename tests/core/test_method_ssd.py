"""Selective Synaptic Dampening on the toy problem (Foster et al., AAAI 2024)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import lethe
from lethe.checkpoint import state_equal
from lethe.methods.ssd import SSDSettings

FORGET = [1]
# With one class of four forgotten, imp_forget / imp_full <= (4 + 10) / 4 = 3.5 on the toy (batches of
# 32), so the published alpha = 10 can select nothing; 3 is just below that bound.
TOY_ALPHA = 3.0


def run_ssd(toy, **kwargs):
    """SSD on the toy's unshuffled loaders, the batches reference_importances recomputes."""
    return toy.unlearn("ssd", FORGET, shuffle=False, **kwargs)


def reference_importances(model, loader):
    """Independent re-computation: per batch, the squared gradient of the mean CE; summed; batch count."""
    model.eval()
    sums = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    batches = 0
    for x, y in loader:
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        for n, p in model.named_parameters():
            sums[n] += p.grad.pow(2)
        batches += 1
    model.zero_grad(set_to_none=True)
    return sums, batches


def test_ssd_forgets_and_keeps_retained(toy):
    before = toy.accuracies(toy.model, FORGET)
    assert before["forget_train"] > 90 and before["retain_train"] > 90
    snapshot = toy.fresh_model()
    model, record = run_ssd(toy, overrides={"alpha": TOY_ALPHA})
    after = toy.accuracies(model, FORGET)
    toy.assert_forgets(before, after, forget_at_most=10, retain_drop=10)
    assert state_equal(toy.model, snapshot)  # the original is untouched
    assert not model.training
    assert all(p.grad is None for p in model.parameters())  # importances leave no gradients behind
    assert 0 < record.extra["dampened"] < record.extra["parameters"] == 500
    assert record.extra["forget_batches"] == 4 and record.extra["retain_batches"] == 10
    assert sum(record.extra["dampened_per_tensor"].values()) == record.extra["dampened"]


@pytest.mark.parametrize(("alpha", "dampening"), [(TOY_ALPHA, 1.0), (2.0, 3.0)])
def test_only_selected_parameters_change_and_none_grows(toy, alpha, dampening):
    """With dampening > alpha, selected parameters with forget / full <= dampening get beta = 1 and stay."""
    model, record = run_ssd(toy, overrides={"alpha": alpha, "dampening": dampening})
    forget_sums, nf = reference_importances(toy.fresh_model(), toy.loader(FORGET))
    retain_sums, nr = reference_importances(toy.fresh_model(), toy.loader(toy.retain_classes(FORGET)))
    old, new = dict(toy.model.named_parameters()), dict(model.named_parameters())
    changed_total = kept_total = 0
    for name, p_old in old.items():
        p_old, p_new = p_old.detach(), new[name].detach()
        imp_forget = forget_sums[name] / nf
        imp_full = (forget_sums[name] + retain_sums[name]) / (nf + nr)
        margin = imp_forget - alpha * imp_full
        selected = margin > 0
        ratio = dampening * imp_full / torch.where(selected, imp_forget, 1.0)
        changed = p_new != p_old
        # Exactly the selected parameters with beta < 1 change (ignoring float ties at the threshold
        # and at beta = 1, and parameters that are exactly zero).
        clear = (margin.abs() > 1e-6 * imp_forget.abs().clamp_min(1e-30)) & ((ratio - 1).abs() > 1e-6) & (p_old != 0)
        assert torch.equal(changed[clear], (selected & (ratio < 1))[clear]), name
        assert not changed[~selected].any(), name
        assert (p_new.abs() <= p_old.abs()).all(), name  # none grows in magnitude
        beta = ratio.clamp(max=1.0)
        torch.testing.assert_close(p_new[selected], p_old[selected] * beta[selected], rtol=1e-4, atol=1e-7)
        changed_total += int(changed.sum())
        kept_total += int((selected & ~changed).sum())
    assert changed_total > 0
    assert (kept_total > 0) == (dampening > alpha)  # beta is capped at 1 only when lambda > alpha
    # Buffers (BatchNorm running statistics) are never touched.
    for (k, a), (_, b) in zip(toy.model.named_buffers(), model.named_buffers(), strict=True):
        assert torch.equal(a, b), k
    assert record.extra["dampened"] >= changed_total


def test_published_alpha_selects_nothing_on_four_classes(toy):
    """The importance ratio is bounded by (all batches) / (forget batches) = 3.5 < 10: nothing changes."""
    model, record = run_ssd(toy)
    assert record.settings == {"alpha": 10.0, "dampening": 1.0}
    assert record.extra["dampened"] == 0
    assert state_equal(model, toy.model)


def test_stronger_dampening_constant_shrinks_more(toy):
    weak, _ = run_ssd(toy, overrides={"alpha": TOY_ALPHA, "dampening": 1.0})
    strong, _ = run_ssd(toy, overrides={"alpha": TOY_ALPHA, "dampening": 0.1})
    norm = lambda m: sum(p.detach().abs().sum() for p in m.parameters())  # noqa: E731
    assert norm(strong) < norm(weak) < norm(toy.model)


def test_published_defaults():
    assert lethe.method_settings("ssd") == SSDSettings(alpha=10.0, dampening=1.0)
    entry = lethe.get_method("ssd")
    assert entry.needs_retain and entry.training_free


def test_missing_retain_raises(toy):
    with pytest.raises(lethe.DataError, match="retain"):
        run_ssd(toy, retain=False)


def test_bad_settings_raise(toy):
    with pytest.raises(lethe.ConfigError):
        run_ssd(toy, overrides={"alpha": 0.0})
