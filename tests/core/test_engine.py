"""The training engine: per-epoch logs, non-finite losses, reproducibility."""

from __future__ import annotations

import io
import sys

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lethe
from lethe.engine import cosine_schedule, cross_entropy_step, seed_everything, sgd


def data(n=48):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 5, generator=g)
    y = (x[:, 0] > 0).long()
    return TensorDataset(x, y)


def test_fit_logs_one_row_per_epoch():
    model = nn.Linear(5, 2)
    engine = lethe.Engine(progress=False)
    loader = DataLoader(data(), batch_size=16)

    def step(m, batch):
        loss, _ = cross_entropy_step(m, batch)
        return loss, {"twice": 2 * loss.detach()}

    log = engine.fit(model, loader, step, sgd(model, 0.1), 3)
    assert [row["epoch"] for row in log] == [1, 2, 3]
    for row in log:
        assert set(row) == {"loss", "twice", "epoch", "lr"}
        assert row["twice"] == pytest.approx(2 * row["loss"])
        assert row["lr"] == 0.1
    assert log[-1]["loss"] < log[0]["loss"]


def test_fit_epoch_mean_is_over_batches():
    model = nn.Linear(5, 2)
    engine = lethe.Engine(progress=False)
    losses = iter([1.0, 2.0, 6.0])

    def step(m, batch):
        out = m(batch[0]).sum() * 0
        return out + next(losses), {}

    log = engine.fit(model, DataLoader(data(), batch_size=16), step, sgd(model, 0.1), 1)
    assert log[0]["loss"] == pytest.approx(3.0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_raises(bad):
    model = nn.Linear(5, 2)
    engine = lethe.Engine(progress=False)

    def step(m, batch):
        return m(batch[0]).sum() * bad, {}

    with pytest.raises(lethe.NonFiniteLossError, match="non-finite"):
        engine.fit(model, DataLoader(data(), batch_size=16), step, sgd(model, 0.1), 2)
    assert issubclass(lethe.NonFiniteLossError, lethe.LetheError)


def test_non_finite_loss_stops_before_update():
    model = nn.Linear(5, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    engine = lethe.Engine(progress=False)

    def step(m, batch):
        return m(batch[0]).sum() * float("nan"), {}

    with pytest.raises(lethe.NonFiniteLossError):
        engine.fit(model, DataLoader(data(), batch_size=16), step, sgd(model, 0.1), 1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def train_once(seed: int):
    seed_everything(seed)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 2))
    engine = lethe.Engine(progress=False, seed=seed)
    loader = engine.loader(data(), batch_size=8, shuffle=True)
    log = engine.fit(model, loader, cross_entropy_step, sgd(model, 0.05), 3)
    return log, model.state_dict()


def test_seeding_is_reproducible():
    log_a, state_a = train_once(7)
    log_b, state_b = train_once(7)
    assert log_a == log_b
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    log_c, _ = train_once(8)
    assert log_c != log_a


def test_train_mode_hook_and_scheduler():
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    engine = lethe.Engine(progress=False)
    modes = []

    def step(m, batch):
        modes.append((m.training, m[1].training))
        return cross_entropy_step(m, batch)

    def bn_eval(m):
        m.train()
        m[1].eval()

    opt = sgd(model, 0.1)
    loader = DataLoader(data(), batch_size=16)  # 3 batches per epoch
    log = engine.fit(model, loader, step, opt, 2, scheduler=cosine_schedule(opt, 6), train_mode=bn_eval)
    assert set(modes) == {(True, False)}
    assert log[0]["lr"] == pytest.approx(0.05)  # half-way through the cosine: 0.1 * (1 + 0) / 2
    assert log[1]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_epoch_end_extends_the_row_and_stops_training():
    torch.manual_seed(0)
    model = nn.Linear(5, 2)
    engine = lethe.Engine(progress=False)
    seen = []

    def epoch_end(epoch, row):
        seen.append(epoch)
        row["check"] = 10.0 * epoch
        return epoch == 2

    log = engine.fit(
        model, DataLoader(data(), batch_size=16), cross_entropy_step, sgd(model, 0.1), 5, epoch_end=epoch_end
    )
    assert seen == [1, 2] and [row["epoch"] for row in log] == [1, 2]
    assert [row["check"] for row in log] == [10.0, 20.0]
    # Never asking to stop: the same weights as a run without the hook.
    runs = []
    for hook in (None, lambda epoch, row: False):
        torch.manual_seed(0)
        net = nn.Linear(5, 2)
        engine.fit(net, DataLoader(data(), batch_size=16), cross_entropy_step, sgd(net, 0.1), 3, epoch_end=hook)
        runs.append(net.weight.detach().clone())
    assert torch.equal(*runs)
    assert engine.all_agree(True) and not engine.all_agree(False)  # one process: the flag itself


def test_to_device_handles_containers():
    engine = lethe.Engine(device="cpu", progress=False)
    batch = {"x": torch.ones(2), "pair": (torch.zeros(1), [torch.ones(1)]), "name": "a"}
    moved = engine.to_device(batch)
    assert moved["name"] == "a"
    assert isinstance(moved["pair"], tuple) and isinstance(moved["pair"][1], list)
    assert torch.equal(moved["x"], batch["x"])


def test_prepare_uses_channels_last_and_keeps_the_model_trainable_inside_inference_mode():
    engine = lethe.Engine(device="cpu", progress=False)
    with torch.inference_mode():  # as collect_outputs calls it, before a model trains again
        model = engine.prepare(nn.Conv2d(3, 4, 3))
    assert model.weight.is_contiguous(memory_format=torch.channels_last)
    assert not model.weight.is_inference()
    model.weight.requires_grad_(True)
    x = engine.to_device(torch.ones(2, 3, 5, 5))
    assert x.is_contiguous(memory_format=torch.channels_last)
    off = lethe.Engine(device="cpu", progress=False, channels_last=False)
    assert off.prepare(nn.Conv2d(3, 4, 3)).weight.is_contiguous()
    assert off.to_device(torch.ones(2, 3, 5, 5)).is_contiguous()


class SkipsABranch(nn.Module):
    """Like an smp encoder cut to fewer stages: ``late`` exists but never runs."""

    def __init__(self) -> None:
        super().__init__()
        self.early = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8))
        self.late = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)
        self.frozen = nn.Linear(8, 8).requires_grad_(False)

    def forward(self, x):
        return self.head(self.early(x))


def test_unused_parameters_names_what_the_step_never_reaches():
    model = SkipsABranch().train()
    loader = DataLoader(data(), batch_size=8)
    engine = lethe.Engine(device="cpu", progress=False)
    before = model.early[1].running_mean.clone()
    assert engine.unused_parameters(model, loader, cross_entropy_step) == ["late.weight", "late.bias"]
    assert model.training and torch.equal(model.early[1].running_mean, before)  # probed in eval mode
    assert all(p.grad is None for p in model.parameters())  # no backward, no update
    model.late = nn.Identity()
    assert engine.unused_parameters(model, loader, cross_entropy_step) == []


def test_compiled_fit_trains_the_same_weights():
    """``compile=True`` trains through ``torch.compile`` (backend "eager": no C++ compiler needed)
    and updates the caller's model exactly as the plain loop does."""
    plain, compiled = nn.Linear(5, 2), nn.Linear(5, 2)
    compiled.load_state_dict(plain.state_dict())
    start = plain.weight.detach().clone()
    seen = []

    def step(m, batch):
        seen.append(type(m).__name__)
        return cross_entropy_step(m, batch)

    for model, flag in ((plain, False), (compiled, True)):
        engine = lethe.Engine(device="cpu", progress=False, compile=flag, compile_backend="eager")
        engine.fit(model, DataLoader(data(), batch_size=16), step, sgd(model, 0.1), 2)
    assert seen[:6] == ["Linear"] * 6 and set(seen[6:]) == {"OptimizedModule"}
    for a, b in zip(plain.parameters(), compiled.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert not torch.equal(plain.weight, start)  # both trained


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_bars_only_on_a_terminal(monkeypatch, terminal):
    """Progress on: a terminal stderr gets tqdm's redrawn bar; a log file or pipe gets no '\\r' at all."""
    stream = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    model = nn.Linear(5, 2)
    engine = lethe.Engine(device="cpu", progress=True)
    engine.fit(model, DataLoader(data(), batch_size=16), cross_entropy_step, sgd(model, 0.1), 2, desc="quiet")
    output = stream.getvalue()
    if terminal:
        assert "\r" in output and "quiet 2/2" in output
    else:
        assert output == ""
