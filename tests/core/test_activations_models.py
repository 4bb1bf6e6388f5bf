"""Input Gram matrices on real module trees (issue 16): the patches of every conv are the ones it
really multiplies, whatever its padding (timm's dynamic TF "SAME", PyTorch's "same", padding modes),
grouping, stride and dilation; SVD unlearning (Kodge et al., TMLR 2024) runs on such models."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from patch_helpers import sampled_and_expected
from timm.layers import Conv2dSame, create_conv2d, pad_same
from timm.layers.conv2d_same import Conv2dSameExport
from timm.layers.std_conv import ScaledStdConv2d, ScaledStdConv2dSame, StdConv2d, StdConv2dSame
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.data import DataLoader, TensorDataset

import lethe
from lethe.activations import GramCollector


@dataclass
class ConvCall:
    """One ``conv2d`` call as the conv made it: its input is already padded by the module."""

    input: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None
    stride: tuple[int, int]
    padding: tuple[int, int] | str
    dilation: tuple[int, int]
    groups: int


@dataclass
class Recorded:
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)  # what each layer's pre-hook saw
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    calls: dict[str, ConvCall] = field(default_factory=dict)  # each conv's own conv2d call


def pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


class Recorder(TorchFunctionMode):
    """Plain hooks record each conv / linear input and output; the ``conv2d`` call made inside a
    conv's forward is recorded with its arguments (input, weight, padding, ...)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.current, self.rec, self.handles = model, None, Recorded(), []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") == "conv2d" and self.current is not None:
            names = ["input", "weight", "bias", "stride", "padding", "dilation", "groups"]
            a = {
                "bias": None,
                "stride": 1,
                "padding": 0,
                "dilation": 1,
                "groups": 1,
                **dict(zip(names, args, strict=False)),
                **kwargs,
            }
            padding = a["padding"] if isinstance(a["padding"], str) else pair(a["padding"])
            assert self.current not in self.rec.calls, "one conv2d call per conv and forward"
            self.rec.calls[self.current] = ConvCall(
                a["input"].detach().clone(),
                a["weight"].detach().clone(),
                a["bias"],
                pair(a["stride"]),
                padding,
                pair(a["dilation"]),
                a["groups"],
            )
        return func(*args, **kwargs)

    def __enter__(self):
        for name, m in self.model.named_modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                self.handles.append(m.register_forward_pre_hook(self._pre(name)))
                self.handles.append(m.register_forward_hook(self._post(name)))
        return super().__enter__()

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        return super().__exit__(*exc)

    def _pre(self, name):
        def hook(module, args):
            self.rec.inputs[name] = args[0].detach().clone()
            self.current = name if isinstance(module, nn.Conv2d) else None

        return hook

    def _post(self, name):
        def hook(module, args, output):
            self.rec.outputs[name] = output.detach().clone()
            self.current = None

        return hook


def collect(model: nn.Module, x: torch.Tensor, **options) -> tuple[GramCollector, Recorded]:
    """One forward pass with lethe's collector and the recorder both hooked."""
    model.eval()
    with torch.no_grad(), GramCollector(model, **options) as collector, Recorder(model) as recorder:
        model(x)
    return collector, recorder.rec


def reference_patches(call: ConvCall) -> torch.Tensor:
    """The patches of ``call``, float64 ``[groups, C_in/g * kh * kw, N * L]``: its input zero-padded
    as ``F.conv2d`` pads (``"same"``: ``dilation * (k - 1)`` in all, the odd one right and bottom),
    unfolded with its kernel, stride and dilation."""
    kernel = call.weight.shape[-2:]
    if call.padding == "valid":
        sides = [0, 0, 0, 0]
    elif call.padding == "same":
        totals = [d * (k - 1) for k, d in zip(kernel, call.dilation, strict=True)]
        sides = [totals[1] // 2, totals[1] - totals[1] // 2, totals[0] // 2, totals[0] - totals[0] // 2]
    else:
        sides = [call.padding[1], call.padding[1], call.padding[0], call.padding[0]]
    x = F.pad(call.input.double(), sides)
    cols = F.unfold(x, kernel, dilation=call.dilation, stride=call.stride)
    n, d, length = cols.shape
    g = call.groups
    return cols.view(n, g, d // g, length).permute(1, 2, 0, 3).reshape(g, d // g, n * length)


def check_reference(call: ConvCall, output: torch.Tensor, patches: torch.Tensor) -> None:
    """The reference is right: the conv's output is the weight it used times the patches, per group."""
    g, out_channels = call.groups, call.weight.shape[0]
    w = call.weight.double().reshape(g, out_channels // g, -1)
    got = (w @ patches).reshape(out_channels, -1)
    if call.bias is not None:
        got = got + call.bias.detach().double()[:, None]
    expected = output.double().transpose(0, 1).reshape(out_channels, -1)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def assert_gram(got: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    assert got.dtype == torch.float64 and got.shape == expected.shape, name
    scale = expected.diagonal(dim1=1, dim2=2).abs().max().clamp_min(1.0)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10 * scale.item(), msg=name)


def check_model(model: nn.Module, x: torch.Tensor) -> tuple[GramCollector, Recorded]:
    """Every Conv2d / Linear Gram matches the direct computation; each layer's memory is freed as
    soon as it is checked (ResNet-50's layer4 Grams are 170 MB each)."""
    collector, rec = collect(model, x)
    modules = dict(model.named_modules())
    hooked = {n for n, m in modules.items() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert set(collector.stats) == hooked and set(rec.inputs) == hooked
    assert collector.skipped() == []
    for name in sorted(hooked):
        stats = collector.stats.pop(name)
        if isinstance(modules[name], nn.Conv2d):
            call = rec.calls[name]
            patches = reference_patches(call)
            check_reference(call, rec.outputs[name], patches)
            if isinstance(modules[name], Conv2dSame):  # padded by the module's own function
                m = modules[name]
                assert torch.equal(pad_same(rec.inputs[name], m.kernel_size, m.stride, m.dilation), call.input)
        else:
            patches = rec.inputs[name].double().reshape(-1, modules[name].in_features).t()[None]
        assert stats.rows == patches.shape[-1], name
        assert_gram(stats.gram, patches @ patches.transpose(1, 2), name)
        del stats, patches
    return collector, rec


def added_padding(rec: Recorded, name: str) -> list[int]:
    """Rows and columns the module added to its input before its conv2d call."""
    return [a - b for a, b in zip(rec.calls[name].input.shape[-2:], rec.inputs[name].shape[-2:], strict=True)]


def test_tf_efficientnet_lite0_dynamic_same_padding():
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=5)
    _, rec = check_model(model, torch.randn(2, 3, 64, 64))
    # the model of the report: Conv2dSame convs declare padding 0 and pad in forward, some by an
    # odd total (one more row / column bottom and right)
    same = [n for n, m in model.named_modules() if isinstance(m, Conv2dSame)]
    assert "blocks.5.0.conv_dw" in same
    assert all(m.padding == (0, 0) for m in model.modules() if isinstance(m, Conv2dSame))
    assert any(any(added_padding(rec, n)) for n in same)
    assert any(p % 2 for n in same for p in added_padding(rec, n))


def test_tf_efficientnet_b0_squeeze_excitation():
    model = timm.create_model("tf_efficientnet_b0", pretrained=False, num_classes=5)
    collector, rec = check_model(model, torch.randn(2, 3, 48, 48))
    se = [n for n in rec.inputs if n.endswith("se.conv_reduce") or n.endswith("se.conv_expand")]
    assert se and all(rec.inputs[n].shape[-2:] == (1, 1) for n in se)  # 1x1 convs on pooled inputs


def test_resnet50_bottleneck():
    model = torchvision.models.resnet50(weights=None, num_classes=10)
    check_model(model, torch.randn(2, 3, 32, 32))
    del model
    gc.collect()


def test_timm_vit_attention_and_mlp_linears():
    model = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2, num_classes=4
    )
    collector, rec = check_model(model, torch.randn(2, 3, 32, 32))
    for name in ("blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.1.mlp.fc1", "blocks.1.mlp.fc2"):
        assert rec.inputs[name].shape[:2] == (2, 17)  # [B, tokens (16 patches + class), dim]
    assert rec.inputs["head"].dim() == 2


VARIANTS = {
    "timm-dynamic-same-stride2": lambda: create_conv2d(4, 6, 3, stride=2, padding="same"),
    "timm-dynamic-same-even-kernel": lambda: create_conv2d(4, 6, 4, padding="same"),
    "timm-dynamic-same-dilated": lambda: create_conv2d(4, 4, 3, stride=2, dilation=2, padding="same"),
    "timm-dynamic-same-depthwise": lambda: create_conv2d(4, 4, 5, stride=2, padding="same", depthwise=True),
    "timm-static-same": lambda: create_conv2d(4, 6, 3, padding="same"),
    "timm-valid": lambda: create_conv2d(4, 6, 3, stride=2, padding="valid"),
    "timm-default": lambda: create_conv2d(4, 6, 3, stride=2),
    "timm-mixed-kernels": lambda: create_conv2d(4, 4, [3, 5], stride=2, padding="same", depthwise=True),
    "timm-same-export": lambda: Conv2dSameExport(4, 6, 3, stride=2),
    "timm-std": lambda: StdConv2d(4, 6, 3, stride=2),
    "timm-std-same": lambda: StdConv2dSame(4, 6, 3, stride=2),
    "timm-scaled-std": lambda: ScaledStdConv2d(4, 6, 3, stride=2, groups=2),
    "timm-scaled-std-same": lambda: ScaledStdConv2dSame(4, 6, 4, stride=1),
    "torch-same-even": lambda: nn.Conv2d(4, 6, 4, padding="same"),
    "torch-same-dilated-grouped": lambda: nn.Conv2d(4, 6, 3, dilation=2, padding="same", groups=2),
    "torch-same-reflect": lambda: nn.Conv2d(4, 6, (4, 2), padding="same", padding_mode="reflect"),
    "torch-reflect-strided": lambda: nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, padding_mode="reflect"),
    "torch-replicate-depthwise": lambda: nn.Conv2d(4, 8, 3, padding=1, groups=4, padding_mode="replicate"),
    "torch-circular-even-same": lambda: nn.Conv2d(4, 6, 2, padding="same", padding_mode="circular"),
}


@pytest.mark.parametrize("make", list(VARIANTS.values()), ids=list(VARIANTS))
@pytest.mark.parametrize("size", [(7, 6), (8, 9)], ids=["7x6", "8x9"])
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_conv_padding_variants(make, size):
    torch.manual_seed(0)
    model = nn.Sequential(make())
    x = torch.randn(2, 4, *size)
    collector, rec = collect(model, x)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert convs and set(rec.calls) == set(convs)
    for name in convs:
        patches = reference_patches(rec.calls[name])
        check_reference(rec.calls[name], rec.outputs[name], patches)
        assert collector.stats[name].rows == patches.shape[-1]
        assert_gram(collector.stats[name].gram, patches @ patches.transpose(1, 2), name)


@pytest.mark.parametrize(
    "make",
    [VARIANTS["timm-dynamic-same-stride2"], VARIANTS["torch-same-reflect"]],
    ids=["timm-dynamic-same", "torch-same-reflect"],
)
def test_sampled_positions_are_patches_of_the_padded_input(make):
    """positions_per_sample keeps working with the module's padding: the drawn columns are the
    reference patches at the drawn positions."""
    conv = make()
    x = torch.randn(3, 4, 7, 6)
    _, rec = collect(nn.Sequential(conv), x)
    full = reference_patches(rec.calls["0"]).float()
    sampled, expected = sampled_and_expected(conv, x, full, positions=4)
    torch.testing.assert_close(sampled, expected)
    torch.manual_seed(5)
    collector, _ = collect(nn.Sequential(conv), x, positions_per_sample=4)
    assert collector.stats["0"].rows == 12
    expected = expected.double()
    assert_gram(collector.stats["0"].gram, expected @ expected.transpose(1, 2), "0")


@pytest.mark.parametrize("max_patches", [None, 2000], ids=["exact", "max-patches"])
def test_svd_unlearns_tf_efficientnet_lite0_end_to_end(max_patches):
    """The user's report: SVD crashed in F.unfold at blocks.5.0.conv_dw (Conv2dSame, 4x4 input)."""
    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=5).eval()
    x, y = torch.randn(10, 3, 64, 64), torch.arange(10) % 5
    forget = DataLoader(TensorDataset(x[y == 0], y[y == 0]), batch_size=4)
    retain = DataLoader(TensorDataset(x[y != 0], y[y != 0]), batch_size=4)
    new, record = lethe.unlearn(
        model,
        "svd",
        forget=forget,
        forget_classes=[0],
        retain=retain,
        overrides={"tune": False, "retain_per_class": 2, "num_forget": 2, "max_patches": max_patches},
        engine=lethe.Engine(progress=False),
    )
    assert "blocks.5.0.conv_dw" in record.extra["layers"]
    assert record.extra["skipped_layers"] == []
    old, changed = model.state_dict(), 0
    for key, value in new.state_dict().items():
        assert torch.isfinite(value.float()).all(), key
        changed += not torch.equal(value, old[key])
    assert changed > 0
    assert not torch.equal(new.blocks[5][0].conv_dw.weight, model.blocks[5][0].conv_dw.weight)
    assert torch.isfinite(new(x[:2])).all()
