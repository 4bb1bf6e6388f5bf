"""Streamed input Gram matrices (methods.md s.2, step 2) and hook coverage on real architectures."""

from __future__ import annotations

import gc

import pytest
import torch
import torch.nn.functional as F
import torch.nn.utils.parametrize
import torchvision
from patch_helpers import sampled_and_expected
from torch import nn

import lethe.activations as act
from lethe.activations import GramCollector, _conv_features, register_conv_padding, supported_layers
from lethe.errors import ConfigError


def explicit_patches(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Patches cut out by hand, one output position at a time: ``[groups, C_in/g*kh*kw, n]``.

    Columns are ordered (sample, output row, output column); features (channel, ky, kx), which
    is how a conv weight ``[out, C_in/g, kh, kw]`` flattens.
    """
    (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
    if conv.padding == "same":  # dilation * (k - 1) in all, the odd one bottom and right (as PyTorch)
        th, tw = dh * (kh - 1), dw * (kw - 1)
        sides = (tw // 2, tw - tw // 2, th // 2, th - th // 2)
    else:
        ph, pw = conv.padding
        sides = (pw, pw, ph, ph)
    mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
    xp = F.pad(x.double(), sides, mode=mode)
    out_h = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    out_w = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    cols = []
    for n in range(x.shape[0]):
        for oy in range(out_h):
            for ox in range(out_w):
                y0, x0 = oy * sh, ox * sw
                window = xp[n, :, y0 : y0 + dh * (kh - 1) + 1 : dh, x0 : x0 + dw * (kw - 1) + 1 : dw]
                cols.append(window)  # [C_in, kh, kw]
    patches = torch.stack(cols, dim=-1)  # [C_in, kh, kw, n]
    g = conv.groups
    cin = x.shape[1]
    return patches.reshape(g, cin // g, kh, kw, -1).reshape(g, (cin // g) * kh * kw, -1)


CONVS = {
    "plain": dict(in_channels=3, out_channels=4, kernel_size=3, padding=1),
    "stride2-nopad": dict(in_channels=4, out_channels=6, kernel_size=3, stride=2),
    "dilation2-pad2": dict(in_channels=4, out_channels=4, kernel_size=3, padding=2, dilation=2),
    "rect-kernel": dict(in_channels=3, out_channels=2, kernel_size=(3, 1), stride=(2, 1), padding=(1, 0)),
    "grouped": dict(in_channels=6, out_channels=4, kernel_size=3, padding=1, groups=2),
    "depthwise": dict(in_channels=4, out_channels=8, kernel_size=3, stride=2, padding=1, groups=4),
    "circular": dict(in_channels=2, out_channels=3, kernel_size=3, padding=1, padding_mode="circular"),
    # PyTorch's "same": asymmetric for an even kernel (1 top/left, 2 bottom/right), in padding_mode
    "same-even-reflect": dict(
        in_channels=3, out_channels=4, kernel_size=(4, 2), padding="same", padding_mode="reflect"
    ),
    "same-even-dilated-reflect": dict(
        in_channels=4, out_channels=4, kernel_size=4, padding="same", dilation=2, groups=2, padding_mode="reflect"
    ),
    "same-even-zeros": dict(in_channels=3, out_channels=2, kernel_size=4, padding="same"),
}


@pytest.mark.parametrize("spec", list(CONVS.values()), ids=list(CONVS))
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_conv_gram_equals_explicit_patches(spec):
    conv = nn.Conv2d(**spec, bias=False)
    x = torch.randn(2, spec["in_channels"], 7, 6)
    r = explicit_patches(conv, x)
    # The reference itself is right: the conv output is W_flat @ patches, per group.
    out = conv(x).double()
    g = conv.groups
    w = conv.weight.detach().double().reshape(g, conv.out_channels // g, -1)
    direct = (w @ r).reshape(conv.out_channels, -1)
    expected_out = out.permute(1, 0, 2, 3).reshape(conv.out_channels, -1)
    torch.testing.assert_close(direct, expected_out, rtol=1e-5, atol=1e-5)

    with GramCollector(conv) as collector:
        conv(x)
    gram = collector.grams()[""]
    assert gram.dtype == torch.float64
    assert gram.shape == (g, r.shape[1], r.shape[1])
    torch.testing.assert_close(gram, r @ r.transpose(1, 2))
    assert collector.stats[""].rows == r.shape[-1]
    assert collector.stats[""].groups == g


def test_linear_token_input():
    layer = nn.Linear(5, 3)
    x = torch.randn(2, 7, 5)  # [N, T, D]
    with GramCollector(layer) as collector:
        layer(x)
    rows = x.reshape(-1, 5).double()
    torch.testing.assert_close(collector.grams()[""], (rows.T @ rows)[None])
    assert collector.stats[""].rows == 14


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("as_kwargs", [False, True])
def test_mha_collects_query_input(batch_first, as_kwargs):
    mha = nn.MultiheadAttention(8, 2, batch_first=batch_first)
    q = torch.randn(3, 4, 8)
    kv = torch.randn(3, 5, 8) * 10 if batch_first else torch.randn(5, 4, 8) * 10
    with GramCollector(mha) as collector:
        if as_kwargs:
            mha(query=q, key=kv, value=kv, need_weights=False)
        else:
            mha(q, kv, kv, need_weights=False)
    rows = q.reshape(-1, 8).double()
    grams = collector.grams()
    assert set(grams) == {""}
    torch.testing.assert_close(grams[""], (rows.T @ rows)[None])
    assert collector.stats[""].kind == "mha"
    assert collector.skipped() == ["out_proj"]


def small_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, stride=2, groups=3),
        nn.Flatten(),
        nn.Linear(6 * 3 * 3, 4),
    )


def test_streaming_equals_one_batch():
    model = small_net().eval()
    a, b = torch.randn(3, 3, 8, 8), torch.randn(5, 3, 8, 8)
    with GramCollector(model) as streamed:
        model(a)
        model(b)
    with GramCollector(model) as once:
        model(torch.cat([a, b]))
    assert streamed.grams().keys() == once.grams().keys() == {"0", "2", "4"}
    for name, gram in once.grams().items():
        torch.testing.assert_close(streamed.grams()[name], gram)
        assert streamed.stats[name].rows == once.stats[name].rows


def test_memory_bounded_by_feature_dimension():
    model = small_net().eval()
    with GramCollector(model) as few:
        model(torch.randn(1, 3, 8, 8))
    with GramCollector(model) as many:
        for _ in range(4):
            model(torch.randn(16, 3, 8, 8))
    for name in few.grams():
        assert few.grams()[name].shape == many.grams()[name].shape
        assert many.stats[name].rows == 64 * few.stats[name].rows
    assert few.grams()["0"].shape == (1, 27, 27)
    assert few.grams()["2"].shape == (3, 18, 18)
    assert few.grams()["4"].shape == (1, 54, 54)


def test_chunked_accumulation(monkeypatch):
    """Many more patches than one chunk holds: the sum over chunks is still exact."""
    import lethe.activations as act

    monkeypatch.setattr(act, "CHUNK_ELEMENTS", 64)
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
    x = torch.randn(2, 2, 5, 5)
    with GramCollector(conv) as collector:
        conv(x)
    r = explicit_patches(conv, x)
    torch.testing.assert_close(collector.grams()[""], r @ r.transpose(1, 2))


def test_hooks_removed_on_exit():
    model = small_net()
    with GramCollector(model) as collector:
        model(torch.randn(2, 3, 8, 8))
    before = {n: g.clone() for n, g in collector.grams().items()}
    model(torch.randn(2, 3, 8, 8))
    for name, gram in collector.grams().items():
        assert torch.equal(gram, before[name])
    assert all(not m._forward_pre_hooks for m in model.modules())


def check_coverage(model: nn.Module, x: torch.Tensor) -> GramCollector:
    """Every Conv2d / Linear / MHA (in_proj) gets a Gram except MHA out_proj (reported skipped)."""
    model.eval()
    layers = supported_layers(model)
    expected_layers = {
        name for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.MultiheadAttention))
    }
    assert set(layers) == expected_layers
    out_projs = {f"{name}.out_proj" for name, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)}
    with torch.inference_mode(), GramCollector(model) as collector:
        model(x)
    grams = collector.grams()
    assert set(grams) == set(layers) - out_projs
    assert set(collector.skipped()) == out_projs
    for name, gram in grams.items():
        module, kind, groups = layers[name]
        if kind == "conv":
            d = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        elif kind == "mha":
            d = module.embed_dim
        else:
            d = module.in_features
        assert gram.shape == (groups, d, d), name
        assert torch.isfinite(gram).all()
        # A Gram matrix is symmetric with a non-negative diagonal.
        assert (gram.diagonal(dim1=1, dim2=2) >= 0).all()
    return collector


def test_coverage_resnet18():
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    collector = check_coverage(model, torch.randn(2, 3, 32, 32))
    assert collector.skipped() == []
    assert "layer2.0.downsample.0" in collector.grams()  # the 1x1 shortcut conv
    assert collector.grams()["fc"].shape == (1, 512, 512)


def test_coverage_resnet50_bottleneck():
    # Largest Gram: layer4 3x3 convs, d = 512*9 = 4608 -> 170 MB each in float64 (~1 GB total).
    model = torchvision.models.resnet50(weights=None, num_classes=10)
    collector = check_coverage(model, torch.randn(2, 3, 32, 32))
    assert collector.skipped() == []
    assert {"layer1.0.conv1", "layer1.0.conv3", "layer4.2.conv2"} <= set(collector.grams())
    del collector, model
    gc.collect()


def test_coverage_vgg11_bn():
    # torchvision's VGG head pools to 7x7 and starts with Linear(25088, 4096): its input Gram
    # would be 25088^2 float64 = 5 GB. We swap in a 1x1 pool and a small head with the same
    # layer types, which keeps the whole test under ~1 GB (largest conv Gram: 4608^2, 170 MB).
    model = torchvision.models.vgg11_bn(weights=None, num_classes=10)
    model.avgpool = nn.AdaptiveAvgPool2d(1)
    model.classifier = nn.Sequential(
        nn.Linear(512, 64), nn.ReLU(), nn.Dropout(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)
    )
    collector = check_coverage(model, torch.randn(2, 3, 32, 32))
    assert collector.skipped() == []
    convs = [n for n, m in model.features.named_modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8
    del collector, model
    gc.collect()


def test_coverage_vit_b_16():
    # d <= 3072 (MLP input), ~1 GB of Grams for 12 blocks.
    model = torchvision.models.vit_b_16(weights=None, image_size=32, num_classes=10)
    collector = check_coverage(model, torch.randn(2, 3, 32, 32))
    assert len(collector.skipped()) == 12  # one MHA out_proj per encoder block
    assert all(n.endswith("self_attention.out_proj") for n in collector.skipped())
    grams = collector.grams()
    assert grams["conv_proj"].shape == (1, 768, 768)
    assert grams["encoder.layers.encoder_layer_0.self_attention"].shape == (1, 768, 768)
    assert grams["encoder.layers.encoder_layer_0.mlp.3"].shape == (1, 3072, 3072)
    # 2 images x (4 patches + class token) tokens went through every block.
    assert collector.stats["encoder.layers.encoder_layer_0.mlp.0"].rows == 10
    del collector, model
    gc.collect()


@pytest.mark.parametrize(
    "spec",
    [
        dict(in_channels=3, out_channels=4, kernel_size=4, padding="same"),  # asymmetric padding
        dict(in_channels=4, out_channels=4, kernel_size=3, padding="same", dilation=2, groups=2),
        dict(in_channels=2, out_channels=3, kernel_size=3, padding=1, padding_mode="reflect"),
        dict(in_channels=2, out_channels=2, kernel_size=3, padding=2, padding_mode="replicate"),
    ],
    ids=["same-even", "same-dilated-grouped", "reflect", "replicate"],
)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_conv_features_reproduce_conv_output(spec):
    """The patches the weight update acts on are exactly the ones the conv multiplies."""
    conv = nn.Conv2d(**spec, bias=False)
    x = torch.randn(2, spec["in_channels"], 7, 6)
    feats = _conv_features(conv, x).double()  # [g, d, N*L]
    g = conv.groups
    w = conv.weight.detach().double().reshape(g, conv.out_channels // g, -1)
    out = conv(x).double()
    expected = out.permute(1, 0, 2, 3).reshape(conv.out_channels, -1)
    got = (w @ feats).reshape(conv.out_channels, -1)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_position_sampling_keeps_a_subset_of_each_samples_patches():
    conv = nn.Conv2d(2, 3, 3, padding=1)
    x = torch.randn(4, 2, 6, 6)
    full = _conv_features(conv, x)  # [1, 18, 4 * 36]
    torch.manual_seed(0)
    sampled = _conv_features(conv, x, positions=5)
    assert sampled.shape == (1, 18, 4 * 5)
    per_sample_full = full.view(18, 4, 36)
    for i, column in enumerate(sampled[0].t()):  # each kept patch is one of its own sample's patches
        sample = i // 5
        assert (per_sample_full[:, sample, :] - column[:, None]).abs().sum(0).min() < 1e-6
    assert torch.equal(_conv_features(conv, x, positions=36), full)  # all positions: unchanged


def test_position_sampling_estimates_the_normalised_gram():
    """Sampled positions give an unbiased estimate: Gram / rows approaches the exact one."""
    model = small_net().eval()
    x = torch.randn(1024, 3, 8, 8)
    with GramCollector(model) as exact:
        model(x)
    torch.manual_seed(0)
    with GramCollector(model, positions_per_sample=8) as sampled:
        model(x)
    for name in ("0", "2"):
        a = exact.grams()[name] / exact.stats[name].rows
        b = sampled.grams()[name] / sampled.stats[name].rows
        assert sampled.stats[name].rows < exact.stats[name].rows or name == "2"  # layer 2 has 9 positions
        assert (a - b).norm() / a.norm() < 0.1, name  # 8,192 of 65,536 patches (layer 0)


def test_float32_products_match_float64_grams():
    model = small_net().eval()
    x = torch.randn(32, 3, 8, 8)
    with GramCollector(model) as exact:
        model(x)
    with GramCollector(model, product_dtype=torch.float32) as fast:
        model(x)
    for name, gram in exact.grams().items():
        assert fast.grams()[name].dtype == torch.float64
        torch.testing.assert_close(fast.grams()[name], gram, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(4, 6, 3, padding=1),
        nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2),
        nn.Conv2d(4, 6, (3, 2), dilation=(2, 1), padding=(2, 0), padding_mode="reflect"),
        nn.Conv2d(4, 6, 1),
    ],
    ids=["3x3", "strided-grouped", "dilated-reflect", "1x1"],
)
def test_sampled_patches_are_the_unfolded_columns_at_the_drawn_positions(conv):
    x = torch.randn(3, 4, 9, 7)
    sampled, expected = sampled_and_expected(conv, x, _conv_features(conv, x), positions=4)
    torch.testing.assert_close(sampled, expected)


def test_rows_are_kept_while_fewer_than_the_features_then_folded():
    layer = nn.Linear(6, 2)
    with GramCollector(layer) as collector:
        first, second = torch.randn(4, 6), torch.randn(3, 6)
        layer(first)
        stats = collector.stats[""]
        assert len(stats._kept) == 1 and stats._gram is None  # 4 rows <= 6 features: kept as rows
        thin = stats.spectrum()
        assert thin.vectors.shape == (1, 6, 4)
        layer(second)  # 7 rows > 6: folded into the Gram matrix
        assert not stats._kept and stats._gram is not None and stats.rows == 7
    rows = torch.cat([first, second]).double()
    torch.testing.assert_close(collector.grams()[""], (rows.T @ rows)[None])
    assert collector.stats[""].spectrum().vectors.shape == (1, 6, 6)


def test_keep_rows_off_accumulates_the_gram_from_the_start():
    layer = nn.Linear(6, 2)
    with GramCollector(layer, keep_rows=False) as collector:
        layer(torch.randn(2, 6))
    assert not collector.stats[""]._kept and collector.stats[""]._gram is not None


class ActConv(nn.Conv2d):
    """A conv subclass with its own forward: lethe cannot know how it pads."""

    def forward(self, x):
        return torch.relu(F.conv2d(F.pad(x, (0, 1, 0, 1)), self.weight, self.bias, self.stride, 0))


def test_conv_subclass_with_unknown_padding_is_a_config_error(monkeypatch):
    monkeypatch.setattr(act, "_CONV_PADDINGS", {})
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Sequential(ActConv(3, 3, 2)))
    with pytest.raises(ConfigError, match=r"layer '1\.0' \(.*ActConv\) pads"):
        GramCollector(model)  # before any data
    assert set(GramCollector(model, layers=["0"]).stats) == {"0"}  # left out: no error

    class Scale(nn.Module):
        def forward(self, w):
            return 2 * w

    # torch.nn.utils.parametrize swaps in a subclass without a forward of its own: nn.Conv2d's padding
    conv = nn.Conv2d(2, 3, 3, padding="same", padding_mode="reflect")
    torch.nn.utils.parametrize.register_parametrization(conv, "weight", Scale())
    assert type(conv) is not nn.Conv2d
    collector = GramCollector(nn.Sequential(conv))
    x = torch.randn(2, 2, 5, 5)
    with collector:
        collector.model(x)
    r = explicit_patches(collector.model[0], x)
    torch.testing.assert_close(collector.grams()["0"], r @ r.transpose(1, 2))


def test_registered_padding_is_used_and_inherited(monkeypatch):
    monkeypatch.setattr(act, "_CONV_PADDINGS", {})
    register_conv_padding(ActConv, lambda conv, x: F.pad(x, (0, 1, 0, 1)))

    class Child(ActConv):  # inherits ActConv's forward, hence its padding
        pass

    conv = Child(2, 3, 2, bias=False)
    x = torch.randn(2, 2, 5, 4)
    with GramCollector(conv) as collector:
        conv(x)
    r = F.unfold(F.pad(x, (0, 1, 0, 1)).double(), 2).permute(1, 0, 2).reshape(1, 8, -1)
    torch.testing.assert_close(collector.grams()[""], r @ r.transpose(1, 2))
    with pytest.raises(ConfigError, match="Conv2d subclass"):
        register_conv_padding(nn.Linear, lambda conv, x: x)


def test_wrong_declared_padding_is_caught_by_the_output_size(monkeypatch):
    monkeypatch.setattr(act, "_CONV_PADDINGS", {})
    register_conv_padding(ActConv, lambda conv, x: x)  # wrong: ActConv pads by one
    conv = ActConv(2, 3, 2)
    error = r"\(5, 4\) output but its padded input gives \(4, 3\)"
    with pytest.raises(ConfigError, match=error), GramCollector(conv):
        conv(torch.randn(1, 2, 5, 4))
