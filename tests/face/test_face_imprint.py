"""Weight imprinting of the identity head (ProtocolOptions.imprint) on generated identities."""

from __future__ import annotations

import pytest
import torch

from lethe.engine import Engine
from lethe_face import FaceModelSpec, FaceOptions, load_faces
from lethe_face.metrics import embeddings_of
from lethe_face.pipeline import PROTOCOLS, ProtocolOptions, fresh_model, imprint_head
from lethe_vision.pipeline import TrainRecipe


@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_imprinted_rows_are_the_class_mean_directions(faces_spec, head):
    bundle = load_faces(faces_spec, options=FaceOptions(size=32)).bundle
    engine = Engine(device="cpu", progress=False)
    spec = FaceModelSpec(bundle.num_classes, head=head, embedding_dim=16, width=4, image_size=32, scale=8.0)
    model = fresh_model(spec, engine)
    imprint_head(model, bundle.train, bundle, engine, spec.scale)
    emb, labels = embeddings_of(model, bundle.train, bundle, engine)
    for c in range(bundle.num_classes):
        mean = torch.nn.functional.normalize(emb[labels == c].mean(0), dim=0)
        row = model.head.weight[c]
        expected = mean * (spec.scale if head == "linear" else 1.0)
        assert torch.allclose(row, expected, atol=1e-5)
    if head == "linear":
        assert torch.count_nonzero(model.head.bias) == 0
    # imprinted, the untrained model already tells the identities apart better than chance
    logits = model.head(emb)
    assert (logits.argmax(1) == labels).float().mean() > 1.5 / bundle.num_classes


def test_all_protocol_imprints_when_asked(faces_spec, monkeypatch):
    bundle = load_faces(faces_spec, options=FaceOptions(size=32)).bundle
    engine = Engine(device="cpu", progress=False)
    calls = []
    import lethe_face.pipeline as pipeline

    real = pipeline.imprint_head
    monkeypatch.setattr(pipeline, "imprint_head", lambda *a: calls.append(len(a[1])) or real(*a))
    spec = FaceModelSpec(2, head="linear", embedding_dim=16, width=4)
    recipe = TrainRecipe(epochs=1, batch_size=8, lr=0.01, warmup_epochs=0)
    protocol, _ = PROTOCOLS.get("all")
    run = protocol(bundle, (1,), spec, recipe, engine, 0.1, ProtocolOptions(imprint=True))
    run.retrain()
    assert calls == [len(run.splits.train), len(run.splits.retain_train)]
    calls.clear()
    protocol(bundle, (1,), spec, recipe, engine, 0.1, ProtocolOptions())
    assert calls == []
