"""SalUn end to end on the toy problem: saliency mask, masked random-label fine-tuning."""

from __future__ import annotations

import pytest
import torch

import lethe
from lethe.checkpoint import state_equal
from lethe.methods.salun import saliency_mask

FORGET = [1]


def run(toy, method="salun", **kwargs):
    """The forget loader is unshuffled (the tests recompute the same saliency mask); retained data is shuffled."""
    kwargs.setdefault("retain", toy.loader(toy.retain_classes(FORGET), shuffle=True))
    return toy.unlearn(method, FORGET, shuffle=False, **kwargs)


def test_published_defaults():
    s = lethe.method_settings("salun")
    assert (s.epochs, s.lr, s.momentum, s.weight_decay) == (10, 0.013, 0.9, 5e-4)
    assert s.threshold == 0.5
    assert s.use_retain is True
    assert lethe.get_method("salun").needs_retain is True


def test_forgets_one_class_and_keeps_the_rest(toy):
    before = toy.accuracies(toy.model, FORGET)
    snapshot = toy.fresh_model()
    model, record = run(toy)
    after = toy.accuracies(model, FORGET)
    assert before["forget_train"] > 90
    toy.assert_forgets(before, after, forget_at_most=5, retain_drop=5)
    assert state_equal(toy.model, snapshot)
    assert not model.training
    assert len(record.log) == 10
    assert {"loss", "forget_loss", "retain_loss"} <= record.log[0].keys()
    total = sum(p.numel() for p in toy.model.parameters())
    assert record.extra["total_weights"] == total
    assert record.extra["salient_weights"] == int(0.5 * total)
    assert record.extra["mask_share"] == pytest.approx(0.5, abs=1 / total)
    assert set(record.extra["layer_share"]) == {n for n, _ in toy.model.named_parameters()}


@pytest.mark.parametrize("threshold", [0.5, 0.2])
def test_weights_outside_the_mask_do_not_change(toy, threshold):
    masks = saliency_mask(toy.fresh_model(), toy.loader(FORGET), threshold, toy.engine())
    model, record = run(toy, overrides={"epochs": 3, "threshold": threshold})
    assert record.extra["salient_weights"] == sum(int(m.sum()) for m in masks.values())
    originals = dict(toy.model.named_parameters())
    moved_inside = 0
    for name, p in model.named_parameters():
        mask = masks[name].bool()
        # Bit for bit: no gradient step, no weight decay, no momentum outside the mask.
        assert torch.equal(p[~mask], originals[name][~mask]), name
        moved_inside += int((p[mask] != originals[name][mask]).sum())
    assert moved_inside > 0.9 * record.extra["salient_weights"]


def test_saliency_mask_is_a_global_top_share_of_gradient_magnitudes(toy):
    model = toy.fresh_model()
    masks = saliency_mask(model, toy.loader(FORGET), 0.3, toy.engine())
    total = sum(p.numel() for p in model.parameters())
    assert sum(int(m.sum()) for m in masks.values()) == int(0.3 * total)
    # Reference: the gradient of the summed forget cross-entropy in one batch, eval mode.
    x, y = toy.x[toy.y == 1], toy.y[toy.y == 1]
    model.eval()
    loss = torch.nn.functional.cross_entropy(model(x), y, reduction="sum")
    names, params = zip(*model.named_parameters(), strict=True)
    grads = dict(zip(names, torch.autograd.grad(loss, list(params)), strict=True))
    kept = torch.cat([grads[n].abs()[masks[n].bool()] for n in masks])
    dropped = torch.cat([grads[n].abs()[~masks[n].bool()] for n in masks])
    assert kept.min() >= dropped.max() * (1 - 1e-4)
    # One ranking across layers, not a share per layer.
    shares = [m.mean().item() for m in masks.values()]
    assert max(shares) - min(shares) > 0.2


def test_full_mask_is_random_labelling(toy):
    """threshold=1 keeps every weight, and the hooks' weight decay matches SGD's own."""
    common = {"epochs": 2, "lr": 0.01}
    salun, _ = run(toy, overrides={**common, "threshold": 1.0})
    rl, _ = run(toy, method="random_label", overrides=common)
    for (name, a), b in zip(salun.state_dict().items(), rl.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name


def test_hooks_are_removed_afterwards(toy):
    model, _ = run(toy, overrides={"epochs": 1, "threshold": 0.1})
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = torch.nn.functional.cross_entropy(model(toy.x[:64]), toy.y[:64])
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    changed = sum(int((p != before[n]).sum()) for n, p in model.named_parameters())
    assert changed > 0.5 * sum(p.numel() for p in model.parameters())


def test_missing_retain_data_and_bad_threshold_raise(toy):
    with pytest.raises(lethe.DataError, match="retain"):
        run(toy, retain=False)
    for threshold in (0.0, 1.5):
        with pytest.raises(lethe.ConfigError, match="threshold"):
            run(toy, overrides={"threshold": threshold})
