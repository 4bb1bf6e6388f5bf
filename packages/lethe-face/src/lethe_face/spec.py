"""``FaceModelSpec``: how to rebuild a face model (embedder, head and their sizes), stored in every
checkpoint; its own module so that embedders defined outside ``lethe_face.models`` (``dlib_resnet``)
read it without importing the registry that builds them."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class FaceModelSpec:
    """How to rebuild a face model: stored in every checkpoint."""

    num_classes: int
    embedder: str = "light-resnet"
    head: str = "cosine"
    image_size: int = 112
    embedding_dim: int = 128
    width: int | None = None
    scale: float = 32.0
    margin: float = 0.5
    #: epochs over which the cosine head's training margin ramps linearly from 0 to ``margin``
    margin_warmup_epochs: int = 0
    pretrained: str | None = None
    weights: str | None = None
    #: ``dlib-resnet`` only: its stem and first this many residual blocks (of 14) run without
    #: gradients, so training and unlearning change only the later blocks and the head; 0 trains all
    frozen_blocks: int = 0

    def to_dict(self) -> dict:
        return asdict(self)
