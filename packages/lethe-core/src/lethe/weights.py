"""State dicts from outside lethe: read a ``.pth`` / ``.pt`` / ``.safetensors`` file, rename a
state dict's keys by position, and copy one into a model whose head (and input channels) may differ.

Every mismatch is a ``CheckpointError`` of one line naming the first offending key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from lethe.errors import CheckpointError

StateDict = dict[str, torch.Tensor]

#: BatchNorm's step counters, absent from some published state dicts (the model's are kept)
COUNTERS = "num_batches_tracked"
#: keys under which training scripts commonly nest the state dict in a saved object
NESTED_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")


def read_state_dict(path: str | os.PathLike) -> StateDict:
    """The tensors of a safetensors file or a ``torch.save``d state dict (read with
    ``weights_only=True``; a dict nesting it under ``state_dict``/``model``/... is unwrapped and
    a ``module.`` prefix from DataParallel is removed)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"weights file not found: {p}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file (pickle, zip, safetensors errors) is an input error
        raise CheckpointError(f"{p} is not a readable state dict ({_first_line(err)})") from None
    for key in NESTED_KEYS:
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if isinstance(state, nn.Module):
        state = state.state_dict()
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{p} holds no state dict (a mapping of names to tensors)")
    return strip_prefix(dict(state), "module.")


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    """``state`` without ``prefix`` on its keys, when every key has it."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def pair_in_order(state: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor], what: str) -> StateDict:
    """``state``'s tensors under ``reference``'s names, paired by position (for weights converted
    from another implementation of the same network: same tensors, in the same order, other names).
    Counts and every pair's shape must agree."""
    if len(state) != len(reference):
        raise CheckpointError(f"{what} has {len(state)} tensors, the architecture {len(reference)}: it does not fit")
    renamed = {}
    for (src, value), (dst, ref) in zip(state.items(), reference.items(), strict=True):
        if value.shape != ref.shape:
            raise CheckpointError(
                f"{what} does not fit the architecture: tensor {src} {tuple(value.shape)} "
                f"pairs with {dst} {tuple(ref.shape)}"
            )
        renamed[dst] = value
    return renamed


@dataclass
class Layout:
    """Where a network's input convolution and classifier are (module names)."""

    first_conv: str | None = None
    head: tuple[str, ...] = ()


def layout(model: nn.Module) -> Layout:
    """timm's ``pretrained_cfg`` (``first_conv``, ``classifier``) when the model has one; otherwise
    the first ``Conv2d`` and the last ``Linear`` in module order."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    first, head = cfg.get("first_conv"), cfg.get("classifier")
    if first or head:
        return Layout(
            first if isinstance(first, str) else None, (head,) if isinstance(head, str) else tuple(head or ())
        )
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return Layout(convs[0] if convs else None, (linears[-1],) if linears else ())


def adapt_input_conv(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """An input convolution's weight for ``channels`` inputs: summed over RGB for one channel,
    otherwise repeated and rescaled (timm's ``adapt_input_conv``)."""
    if channels == 1:
        return weight.sum(dim=1, keepdim=True)
    have = weight.shape[1]
    repeats = -(-channels // have)
    return weight.repeat(1, repeats, 1, 1)[:, :channels] * (have / channels)


@dataclass
class Transfer:
    """What ``transfer`` did: tensors copied, head tensors left as initialised, tensors not used."""

    loaded: int = 0
    new_head: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)


def _under(key: str, prefixes: Sequence[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def transfer(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    what: str,
    *,
    head: Sequence[str] = (),
    first_conv: str | None = None,
    partial: bool = False,
) -> Transfer:
    """Copy ``state`` into ``model``: every tensor of ``model`` must be in ``state`` with its shape,
    except those under ``head`` (a classifier re-sized for the dataset: zero-initialised when its
    shape differs, so fine-tuning starts from uniform predictions; the libraries' own initialisation
    of tf_efficientnet_lite0's 10-way head gives logits of standard deviation 12 on CIFAR-10) and
    ``first_conv``'s weight (adapted to the model's input channels).
    Tensors of ``state`` the model lacks are an error unless under ``head`` or ``partial`` (an
    encoder taking part of a network)."""
    own = model.state_dict()
    merged, report = dict(own), Transfer()
    missing = [k for k in own if k not in state and not _under(k, head) and not k.endswith(COUNTERS)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"{what} does not fit the architecture: it has no tensor {missing[0]}{more}")
    report.unused = [k for k in state if k not in own]
    stray = [k for k in report.unused if not _under(k, head)]
    if stray and not partial:
        more = f" (and {len(stray) - 1} more)" if len(stray) > 1 else ""
        raise CheckpointError(f"{what} does not fit the architecture: the model has no tensor {stray[0]}{more}")
    for key, target in own.items():
        if key not in state:
            if _under(key, head):
                report.new_head.append(key)
            continue
        value = state[key]
        if value.shape != target.shape and first_conv and key == f"{first_conv}.weight" and value.dim() == 4:
            value = adapt_input_conv(value, target.shape[1])
        if value.shape == target.shape:
            merged[key] = value.to(target.dtype)
            report.loaded += 1
        elif _under(key, head):
            report.new_head.append(key)
        else:
            raise CheckpointError(
                f"{what} does not fit the architecture: {key} is {tuple(value.shape)} in the weights, "
                f"{tuple(target.shape)} in the model"
            )
    for key in report.new_head:  # a re-sized classifier starts at zero: uniform predictions, loss ln(C)
        merged[key] = torch.zeros_like(own[key])
    model.load_state_dict(merged, strict=True)
    return report


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:200]
