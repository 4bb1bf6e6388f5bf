"""Face models: both embedders build offline, embeddings are normalised, the ArcFace head."""

from __future__ import annotations

import math

import pytest
import torch

from lethe.errors import ConfigError
from lethe_face import FaceModelSpec, arcface_logits, build_face_model
from lethe_face.models import CosineHead


def test_arcface_margin_only_on_target():
    head = CosineHead(8, 4, scale=30.0, margin=0.5)
    x = torch.randn(5, 8)
    logits = head(x)
    assert logits.abs().max() <= 30.0 + 1e-4
    labels = torch.tensor([0, 1, 2, 3, 0])
    out = arcface_logits(logits, labels, 30.0, 0.5)
    other = torch.ones_like(logits, dtype=torch.bool).scatter(1, labels.view(-1, 1), False)
    assert torch.allclose(out[other], logits[other], atol=1e-4)
    theta = torch.acos((logits.gather(1, labels.view(-1, 1)) / 30).clamp(-1, 1))
    expected = torch.where(theta + 0.5 < math.pi, 30 * torch.cos(theta + 0.5), out.gather(1, labels.view(-1, 1)))
    assert torch.allclose(out.gather(1, labels.view(-1, 1)), expected, atol=1e-3)
    assert torch.equal(arcface_logits(logits, labels, 30.0, 0.0), logits)


@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_light_resnet_embeds(head):
    model = build_face_model(FaceModelSpec(5, head=head, embedding_dim=24, width=4, image_size=32)).eval()
    x = torch.randn(3, 3, 32, 32)
    assert model(x).shape == (3, 5)
    e = model.embed(x)
    assert e.shape == (3, 24) and torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)


def test_inception_resnet_v1_offline(tmp_path, monkeypatch):
    model = build_face_model(FaceModelSpec(3, "inception-resnet-v1", "cosine", image_size=80, embedding_dim=512)).eval()
    with torch.no_grad():
        e = model.embed(torch.randn(2, 3, 80, 80))
        assert model(torch.randn(2, 3, 80, 80)).shape == (2, 3)
    assert e.shape == (2, 512) and torch.allclose(e.norm(dim=1), torch.ones(2), atol=1e-5)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="VGGFace2 weights are not on this machine"):
        build_face_model(FaceModelSpec(3, "inception-resnet-v1", pretrained="vggface2", embedding_dim=512))
    with pytest.raises(ConfigError, match="not found"):
        build_face_model(
            FaceModelSpec(
                3, "inception-resnet-v1", pretrained="vggface2", embedding_dim=512, weights=str(tmp_path / "none.pt")
            )
        )


def test_bad_model_settings():
    with pytest.raises(ConfigError, match="unknown embedder"):
        build_face_model(FaceModelSpec(3, "vgg-face"))
    with pytest.raises(ConfigError, match="unknown head"):
        build_face_model(FaceModelSpec(3, head="sphere"))
    with pytest.raises(ConfigError, match="no pretrained weights"):
        build_face_model(FaceModelSpec(3, pretrained="vggface2"))


def test_margin_warmup_ramps_the_training_margin_from_zero():
    from lethe_face.pipeline import identity_step

    model = build_face_model(
        FaceModelSpec(4, head="cosine", embedding_dim=8, width=4, image_size=32, margin=0.4, margin_warmup_epochs=2)
    )
    step = identity_step(model.head, steps_per_epoch=3)
    batch = (torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]))
    margins = [step(model, batch)[1]["margin"].item() for _ in range(8)]
    assert margins == pytest.approx([0.0, 0.4 / 6, 0.8 / 6, 0.2, 1.6 / 6, 2.0 / 6, 0.4, 0.4])
    assert (
        identity_step(build_face_model(FaceModelSpec(4, head="cosine", width=4, image_size=32)).head)(model, batch)[1]
        == {}
    )  # no warm-up: the full margin from the first step, nothing logged
    with pytest.raises(ConfigError, match="margin_warmup_epochs must not be negative"):
        build_face_model(FaceModelSpec(3, head="cosine", margin_warmup_epochs=-1))
