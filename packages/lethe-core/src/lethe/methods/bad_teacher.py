"""Bad Teaching (Chundawat, Tarun, Mandal, Kankanhalli, "Can Bad Teaching Induce Forgetting?
Unlearning in Deep Networks using an Incompetent Teacher", AAAI 2023, arXiv 2205.08096).

The student starts from the model. A competent teacher (a frozen copy of the original) and an
incompetent teacher (a frozen, randomly re-initialised copy) give the targets: on forget samples the
student distils the incompetent teacher's ``softmax(z / T)``, on retained samples the competent
teacher's, with a KL loss. It trains on the union of the forget set and a random subset of the
retained set.

Defaults: the authors' code (github.com/vikram2000b/bad-teaching-unlearning, ``blindspot_unlearner``,
as also run by the SSD repository): Adam, lr 1e-4, 1 epoch, KL temperature 1, retained subset 30 %
of the retained data (their batch size is 256; here the retained loader's batch size is used).

Sampling (why a union loader): like the authors' ``UnLearningData``, we build one shuffled loader
over the forget dataset plus the retained subset, each sample flagged forget/retain, so one epoch
shows every forget sample and every chosen retained sample exactly once and each batch holds the
two kinds in their dataset proportion. Cycling the forget loader beside retained batches would
instead fix the forget share at one half per batch and repeat the forget set several times.
The loss is the true KL divergence (batch mean); the authors' ``F.kl_div`` default averages over
classes too, a constant factor that Adam's scale invariance makes immaterial.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Subset

from lethe._registry import Settings, register_method, setting
from lethe.errors import ConfigError, DataError
from lethe.methods._common import Flagged, reset_parameters


@dataclass
class BadTeacherSettings(Settings):
    """Published defaults from the authors' code: Adam lr 1e-4, 1 epoch, KL temperature 1, a random
    30 % of the retained data."""

    epochs: int = setting(1, ge=1)
    lr: float = setting(1e-4, gt=0, meaning="learning rate")
    temperature: float = setting(1.0, gt=0)
    retain_fraction: float = setting(0.3, ge=0, le=1)


def incompetent_teacher(model: nn.Module, seed: int) -> nn.Module:
    """A frozen copy of ``model`` with every parameter re-initialised, reproducibly from ``seed``.

    Initialised on the CPU under a forked RNG, so the result does not depend on the device and the
    global random state is left untouched.
    """
    device = next(model.parameters()).device
    teacher = copy.deepcopy(model).cpu()
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        reset_parameters(teacher)
    return teacher.to(device).eval().requires_grad_(False)


def union_loader(ctx, fraction: float) -> tuple[DataLoader, int, int]:
    """Shuffled loader over the forget dataset and a seeded random ``fraction`` of the retained one."""
    retain_set, forget_set = ctx.retain.dataset, ctx.forget.dataset
    n_keep = int(fraction * len(retain_set))
    generator = torch.Generator().manual_seed(ctx.engine.seed)
    chosen = torch.randperm(len(retain_set), generator=generator)[:n_keep].tolist()
    union = ConcatDataset([Flagged(forget_set, 1), Flagged(Subset(retain_set, chosen), 0)])
    batch_size = ctx.retain.batch_size or ctx.forget.batch_size or 256
    return ctx.engine.loader(union, batch_size, shuffle=True), len(forget_set), n_keep


PAPER = "Chundawat et al., AAAI 2023 (arXiv 2205.08096)"


@register_method("bad_teacher", BadTeacherSettings, needs_retain=True, paper=PAPER)
def bad_teacher(model: nn.Module, s: BadTeacherSettings, ctx) -> tuple[list[dict], dict]:
    """Distil the incompetent teacher on forget samples and the competent one on retained samples."""
    if not 0.0 <= s.retain_fraction <= 1.0:
        raise ConfigError(f"retain_fraction must lie in [0, 1], got {s.retain_fraction}")
    if not s.temperature > 0:
        raise ConfigError(f"temperature must be positive, got {s.temperature}")
    if not s.lr > 0:
        raise ConfigError(f"learning rate must be positive, got {s.lr}")
    engine = ctx.engine
    competent = copy.deepcopy(model).eval().requires_grad_(False)
    incompetent = incompetent_teacher(model, engine.seed)
    loader, n_forget, n_retain = union_loader(ctx, s.retain_fraction)
    if n_forget == 0:
        raise DataError("the forget set is empty")
    T = s.temperature

    def step(student: nn.Module, batch) -> tuple[torch.Tensor, dict]:
        x, flag = batch[0], batch[2]
        forget = flag.bool().view(-1, 1)
        with torch.no_grad():
            good = F.softmax(competent(x).float() / T, dim=1)
            bad = F.softmax(incompetent(x).float() / T, dim=1)
            target = torch.where(forget, bad, good)
        log_q = F.log_softmax(student(x).float() / T, dim=1)
        kl_rows = (torch.xlogy(target, target) - target * log_q).sum(dim=1)
        loss = kl_rows.mean()
        with torch.no_grad():
            # The loss split by sample kind (each summed over its rows / batch size): they add up to it.
            f = forget.view(-1).to(kl_rows.dtype)
            parts = {
                "forget_kl": (kl_rows * f).sum() / len(f),
                "retain_kl": (kl_rows * (1 - f)).sum() / len(f),
                "forget_share": f.mean(),
            }
        return loss, parts

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=s.lr)
    log = engine.fit(model, loader, step, optimizer, s.epochs, desc="bad_teacher")
    model.eval()
    return log, {"forget_samples": n_forget, "retain_samples": n_retain}
