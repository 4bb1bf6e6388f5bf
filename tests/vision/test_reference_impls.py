"""The references of ``lethe_vision.reference`` are faithful: the SVD reference gives our projection when
both see the same single batch with no patch subsampling, and the DELETE loss is ours."""

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lethe
from lethe.engine import Engine
from lethe.losses import masked_distillation_loss
from lethe_vision.reference import svd_reference
from lethe_vision.reference.delete_reference import ReferenceDeleteSettings, delete_reference, reference_delete_loss
from lethe_vision.reference.svd_reference import ReferenceSVDSettings, svd_unlearn_reference


@pytest.fixture(autouse=True)
def one_thread():  # tiny tensors: one thread takes seconds where two contending threads take minutes
    threads, _ = torch.get_num_threads(), torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny_net() -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    )
    net[1].running_mean.uniform_(-0.2, 0.2)
    net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


def _loader(x: torch.Tensor, y: torch.Tensor) -> DataLoader:
    return DataLoader(TensorDataset(x, y), batch_size=5)


def test_reference_svd_matches_ours_on_one_batch_without_subsampling():
    model = _tiny_net()
    xr, yr = torch.randn(12, 3, 8, 8), torch.arange(12) % 2
    xf, yf = torch.randn(8, 3, 8, 8) + 0.5, torch.full((8,), 2)
    overrides = {"tune": False, "alpha_r": 100.0, "alpha_f": 3.0, "retain_per_class": 100, "num_forget": 100}
    ours, record = lethe.unlearn(
        model,
        "svd",
        forget=_loader(xf, yf),
        retain=_loader(xr, yr),
        forget_classes=[2],
        overrides=overrides,
        engine=Engine(device="cpu", progress=False),
    )
    assert record.extra["retain_samples"] == 12 and record.extra["forget_samples"] == 8
    ref = svd_unlearn_reference(copy.deepcopy(model), xr, xf, ReferenceSVDSettings(100.0, 3.0, max_patches=None))
    changed = 0
    for (name, a), (_, b), (_, before) in zip(
        ours.named_parameters(), ref.named_parameters(), model.named_parameters(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
        changed += not torch.allclose(a, before)
    assert changed == 3  # the three weights; biases and BatchNorm untouched


def test_patch_subsample_is_a_seeded_uniform_subset_of_the_full_unfold(monkeypatch):
    monkeypatch.setattr(svd_reference, "UNFOLD_CHUNK", 2)  # gather across several chunks
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
    x = torch.randn(5, 3, 9, 9)
    full = svd_reference._conv_patches(conv, x, None, torch.Generator())
    sub = svd_reference._conv_patches(conv, x, 40, torch.Generator().manual_seed(7))
    keep = torch.randperm(full.shape[1], generator=torch.Generator().manual_seed(7))[:40].sort().values
    assert full.shape == (27, 5 * 25) and sub.shape == (27, 40)
    torch.testing.assert_close(sub, full[:, keep])


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_reference_delete_loss_is_ours(temperature):
    student, teacher = torch.randn(16, 10) * 3, torch.randn(16, 10) * 3
    ours = masked_distillation_loss(student, teacher, [1, 7], temperature=temperature).loss
    ref = reference_delete_loss(student, teacher, [1, 7], temperature)
    torch.testing.assert_close(ours, ref * temperature**2)  # published: no T^2 (T = 1 there)


def test_reference_delete_loop_forgets_and_stops_when_asked():
    model = _tiny_net()
    x, y = torch.randn(20, 3, 8, 8), torch.full((20,), 2)
    with torch.no_grad():
        before = torch.softmax(model(x), 1)[:, 2].mean()
    calls = []
    losses = delete_reference(
        model,
        _loader(x, y),
        [2],
        ReferenceDeleteSettings(epochs=5, lr=0.05),
        stop=lambda: calls.append(1) or len(calls) == 3,
    )
    assert len(losses) == 3
    with torch.no_grad():
        assert torch.softmax(model.eval()(x), 1)[:, 2].mean() < before
