"""SVD unlearning end to end on the toy problem (methods.md s.2)."""

from __future__ import annotations

import functools
import itertools

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import lethe
from lethe.activations import GramCollector
from lethe.checkpoint import state_equal
from lethe.methods.svd import accumulate_grams, expected_samples
from lethe.metrics import class_accuracy_score, collect_outputs

FORGET = [1]
GRID_R = (10.0, 30.0, 100.0, 300.0, 1000.0)
GRID_F = (1.0, 3.0, 10.0, 30.0, 100.0)


def run_svd(toy, **kwargs):
    """SVD on the toy's unshuffled loaders: it takes the first samples of each class."""
    return toy.unlearn("svd", FORGET, shuffle=False, **kwargs)


def test_svd_forgets_and_keeps_retained(toy):
    before = toy.accuracies(toy.model, FORGET)
    assert before["forget_train"] > 90 and before["retain_train"] > 90

    model, record = run_svd(toy, validation=True)
    after = toy.accuracies(model, FORGET)
    toy.assert_forgets(before, after, forget_at_most=20, retain_drop=10)
    assert record.method == "svd" and record.forget_classes == FORGET
    assert record.seconds > 0
    assert record.extra["layers"] == ["0", "3", "7"]
    assert record.extra["skipped_layers"] == []


def test_only_conv_and_linear_weights_change(toy):
    model, _ = run_svd(toy, overrides={"tune": False})
    weights = {"0.weight", "3.weight", "7.weight"}
    old, new = toy.model.state_dict(), model.state_dict()
    assert old.keys() == new.keys()
    for key in old:
        if key in weights:
            assert not torch.equal(old[key], new[key]), key
        else:  # biases, BatchNorm affine parameters and running statistics
            assert torch.equal(old[key], new[key]), key
    assert not model.training


def test_original_model_not_modified(toy):
    snapshot = toy.fresh_model()
    model, _ = run_svd(toy, validation=True)
    assert model is not toy.model
    assert state_equal(toy.model, snapshot)
    assert not state_equal(model, snapshot)


def test_inplace_modifies_given_model(toy):
    target = toy.fresh_model()
    model, _ = run_svd(toy, model=target, inplace=True, overrides={"tune": False})
    assert model is target
    assert not state_equal(target, toy.model)


def test_no_tuning_uses_settings_alphas(toy):
    model, record = run_svd(
        toy,
        validation=True,
        overrides={"tune": False, "alpha_r": 30.0, "alpha_f": 10.0},
    )
    assert record.extra["alpha_r"] == 30.0
    assert record.extra["alpha_f"] == 10.0
    assert record.extra["tuned"] is False
    assert record.extra["grid"] == []
    assert record.settings["alpha_r"] == 30.0 and record.settings["tune"] is False
    # Without validation data or a score function, tune=True cannot tune either.
    _, untuned = run_svd(toy)
    assert untuned.extra["tuned"] is False
    assert (untuned.extra["alpha_r"], untuned.extra["alpha_f"]) == (100.0, 3.0)


class CountingDataset(Dataset):
    def __init__(self, x, y):
        self.x, self.y, self.reads = x, y, 0

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        self.reads += 1
        return self.x[i], self.y[i]


def test_tuning_uses_validation_and_records_grid(toy):
    val = CountingDataset(toy.val_x, toy.val_y)
    val_loader = DataLoader(val, batch_size=100)
    model, record = run_svd(toy, validation=val_loader)
    grid = record.extra["grid"]
    assert len(grid) == 25
    assert [(g["alpha_r"], g["alpha_f"]) for g in grid] == list(itertools.product(GRID_R, GRID_F))
    assert val.reads == 25 * len(val)
    assert record.extra["tuned"] is True
    best = max(grid, key=lambda g: g["score"])
    assert (record.extra["alpha_r"], record.extra["alpha_f"]) == (best["alpha_r"], best["alpha_f"])
    # The returned model is the chosen grid point: its validation score is the best one.
    score = class_accuracy_score(collect_outputs(model, toy.loader(val=True)), FORGET)
    assert score == pytest.approx(best["score"], abs=1e-9)
    assert record.log == grid


def test_custom_grid_and_score_fn(toy):
    calls = []

    def score_fn(model: nn.Module) -> float:
        calls.append(1)
        return -float(len(calls))  # the first grid point scores best

    _, record = run_svd(
        toy,
        validation=True,
        score_fn=score_fn,
        overrides={"grid_r": "3,30", "grid_f": "1,2,4"},
    )
    assert len(calls) == 6
    assert len(record.extra["grid"]) == 6
    assert (record.extra["alpha_r"], record.extra["alpha_f"]) == (3.0, 1.0)


def test_missing_retain_raises(toy):
    with pytest.raises(lethe.DataError, match="retain"):
        run_svd(toy, retain=False)


def test_empty_forget_set_raises(toy):
    empty = DataLoader(TensorDataset(toy.x[:0], toy.y[:0]), batch_size=4)
    with pytest.raises(lethe.DataError):
        run_svd(toy, forget_data=empty)


def test_retain_per_class_and_num_forget(toy):
    _, record = run_svd(toy, overrides={"tune": False, "retain_per_class": 5, "num_forget": 7})
    assert record.extra["retain_samples"] == 15  # 3 retained classes x 5
    assert record.extra["forget_samples"] == 7


def test_accumulate_grams_takes_first_samples_of_each_class(toy):
    model = toy.fresh_model()
    x, y = toy.x[:40], toy.y[:40]  # classes 0,1,2,3 in turn, 10 each
    loader = DataLoader(TensorDataset(x, y), batch_size=6)
    collected = accumulate_grams(model, loader, toy.engine(), per_class=3)
    assert collected.samples == 12
    chosen = torch.cat([torch.nonzero(y == c).flatten()[:3] for c in range(4)])
    with torch.no_grad(), GramCollector(model) as reference:
        model(x[chosen])
    for name, gram in reference.grams().items():
        torch.testing.assert_close(collected.grams()[name], gram)

    capped = accumulate_grams(model, loader, toy.engine(), max_samples=9)
    assert capped.samples == 9
    with torch.no_grad(), GramCollector(model) as first9:
        model(x[:9])
    for name, gram in first9.grams().items():
        torch.testing.assert_close(capped.grams()[name], gram)


def test_max_patches_spreads_a_patch_budget_over_the_samples(toy):
    model = toy.fresh_model()
    loader = DataLoader(TensorDataset(toy.x[:40], toy.y[:40]), batch_size=6)
    full = accumulate_grams(model, loader, toy.engine(), max_samples=20)
    torch.manual_seed(0)
    capped = accumulate_grams(model, loader, toy.engine(), max_samples=20, max_patches=100)
    assert capped.samples == full.samples == 20
    for name, stats in capped.stats.items():
        if stats.kind == "conv":  # 8x8 outputs: 64 positions a sample, 5 (= ceil(100 / 20)) kept
            assert (full.stats[name].rows, stats.rows) == (20 * 64, 20 * 5), name
        else:  # tokens are samples: nothing to subsample
            assert stats.rows == full.stats[name].rows, name
    # fewer samples than the quota: the budget is spread over those there are (40 -> 3 a sample)
    few = accumulate_grams(model, loader, toy.engine(), max_samples=1000, max_patches=100)
    assert {s.rows for s in few.stats.values() if s.kind == "conv"} == {40 * 3}


def test_expected_samples_is_the_quota_bounded_by_the_data(toy):
    loader = DataLoader(TensorDataset(toy.x[:40], toy.y[:40]), batch_size=6)
    assert expected_samples(loader, 9, None, None) == 9
    assert expected_samples(loader, None, 5, 3) == 15
    assert expected_samples(loader, None, 50, 3) == 40
    assert expected_samples(loader, None, 5, None) == 40


class TinyAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = self.embed(x)
        h, _ = self.attn(h, h, h, need_weights=False)
        return self.head(h.mean(dim=1))


def test_attention_in_proj_updated_out_proj_skipped():
    model = TinyAttention().eval()
    x = torch.randn(30, 5, 4)
    y = torch.arange(30) % 3
    loader = DataLoader(TensorDataset(x, y), batch_size=10)
    forget = DataLoader(TensorDataset(x[y == 0], y[y == 0]), batch_size=10)
    new, record = lethe.unlearn(
        model,
        "svd",
        forget=forget,
        forget_classes=[0],
        retain=loader,
        overrides={"tune": False},
        engine=lethe.Engine(progress=False),
    )
    assert record.extra["skipped_layers"] == ["attn.out_proj"]
    assert set(record.extra["layers"]) == {"embed", "attn", "head"}
    assert not torch.equal(new.attn.in_proj_weight, model.attn.in_proj_weight)
    assert torch.equal(new.attn.out_proj.weight, model.attn.out_proj.weight)
    assert torch.equal(new.attn.in_proj_bias, model.attn.in_proj_bias)


def test_weights_match_the_update_computed_by_hand(toy):
    """W <- W_flat P^T, P = I - (M_f - M_f M_r), M from the Gram of each layer's input."""
    alpha_r, alpha_f = 30.0, 10.0
    retain_x = torch.cat([toy.x[toy.y == c][:5] for c in (0, 2, 3)])
    forget_x = toy.x[toy.y == 1][:20]
    model, _ = run_svd(
        toy,
        overrides={
            "tune": False,
            "alpha_r": alpha_r,
            "alpha_f": alpha_f,
            "retain_per_class": 5,
            "num_forget": 20,
            "exact": True,  # every patch in float64: the hand computation below
        },
    )
    original = toy.fresh_model().eval()
    grams = {}
    for key, x in (("retain", retain_x), ("forget", forget_x)):
        with torch.no_grad(), GramCollector(original) as collector:
            original(x)
        grams[key] = collector.grams()

    def projector(gram, alpha):
        evals, evecs = torch.linalg.eigh(gram)
        lam = evals.clamp_min(0) / evals.clamp_min(0).sum(dim=-1, keepdim=True)
        w = alpha * lam / ((alpha - 1) * lam + 1)
        return evecs @ torch.diag_embed(w) @ evecs.transpose(-1, -2)

    for name in ("0", "3", "7"):
        m_r = projector(grams["retain"][name], alpha_r)
        m_f = projector(grams["forget"][name], alpha_f)
        p = torch.eye(m_f.shape[-1], dtype=torch.float64) - (m_f - m_f @ m_r)
        layer = dict(original.named_modules())[name]
        w = layer.weight.detach().double()
        groups = p.shape[0]
        w_flat = w.reshape(groups, w.shape[0] // groups, -1)
        expected = (w_flat @ p.transpose(-1, -2)).reshape(w.shape).float()
        got = dict(model.named_modules())[name].weight.detach()
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_svd_speed_options_are_checked(toy):
    with pytest.raises(lethe.ConfigError, match="gram_precision"):
        toy.unlearn("svd", [1], overrides={"gram_precision": "float16", "tune": False})
    with pytest.raises(lethe.ConfigError, match="positions_per_sample"):
        toy.unlearn("svd", [1], overrides={"positions_per_sample": 0, "tune": False})
    with pytest.raises(lethe.ConfigError, match="max_patches must be at least 1"):
        toy.unlearn("svd", [1], overrides={"max_patches": 0, "tune": False})
    _, record = toy.unlearn(
        "svd", [1], overrides={"gram_precision": "float32", "positions_per_sample": 4, "tune": False}
    )
    assert record.settings["gram_precision"] == "float32"


@pytest.mark.parametrize("layers", [("7",), "7", ("3;7",), ["[37]"]])
def test_layers_limits_the_projection_to_matching_layers(toy, layers):
    model, record = run_svd(toy, overrides={"tune": False, "layers": layers})
    chosen = {"7"} if "3" not in str(layers) else {"3", "7"}
    assert set(record.extra["layers"]) == chosen
    old, new = toy.model.state_dict(), model.state_dict()
    for name in ("0", "3", "7"):
        assert torch.equal(old[f"{name}.weight"], new[f"{name}.weight"]) == (name not in chosen), name


def test_layers_matching_nothing_is_a_config_error(toy):
    with pytest.raises(lethe.ConfigError, match="matches no Conv2d, Linear"):
        run_svd(toy, overrides={"tune": False, "layers": ("head",)})
    with pytest.raises(lethe.ConfigError, match="names no pattern"):
        run_svd(toy, overrides={"tune": False, "layers": (";",)})


@pytest.mark.parametrize("exact", [True, False], ids=["exact-thin-svd", "default-dual-gram"])
def test_kept_rows_give_the_weights_of_the_gram_path(toy, monkeypatch, exact):
    """With 2 samples per side every linear layer sees fewer rows than features, so the kept-rows
    path runs (a float64 thin SVD when exact, else float32 eigh of the smaller Gram); the weights
    equal those of the Gram + eigh path."""
    overrides = {"tune": False, "retain_per_class": 1, "num_forget": 2, "exact": exact}
    thin, record = run_svd(toy, overrides=overrides)
    assert record.extra["forget_samples"] == 2
    import lethe.methods.svd as svd_module

    monkeypatch.setattr(svd_module, "GramCollector", functools.partial(GramCollector, keep_rows=False))
    full, _ = run_svd(toy, overrides=overrides)
    for key, value in thin.state_dict().items():
        torch.testing.assert_close(value, full.state_dict()[key], rtol=1e-5, atol=1e-6)
