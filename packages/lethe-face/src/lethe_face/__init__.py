"""lethe_face: make a face-recognition model forget a person.

Identity-folder datasets (``lfw``, ``att``, ``folder:<root>``) with optional MTCNN alignment, an
embedder (``light-resnet``, facenet-pytorch ``inception-resnet-v1``) with a ``linear`` or ArcFace
``cosine`` identity head, the ``all`` and ``two-stage`` (DELETE's face setting) protocols, and
verification metrics next to identification accuracy. Every ``lethe`` method runs through
``lethe.unlearn``; splits, loaders and identification metrics are ``lethe_vision``'s.
"""

from lethe_face.datasets import FACE_DATASETS, FaceData, FaceOptions, identity_subset, load_faces, parse_identities
from lethe_face.metrics import (
    VerifyOptions,
    evaluate_verification,
    kfold_accuracy,
    make_pairs,
    read_pairs,
    verification_metrics,
)
from lethe_face.models import EMBEDDERS, HEADS, FaceModel, FaceModelSpec, arcface_logits, build_face_model
from lethe_face.pipeline import PROTOCOLS, FaceRun, ProtocolOptions, evaluate_face, train_face

__version__ = "0.1.0"

__all__ = [
    "EMBEDDERS",
    "FACE_DATASETS",
    "FaceData",
    "FaceModel",
    "FaceModelSpec",
    "FaceOptions",
    "FaceRun",
    "HEADS",
    "PROTOCOLS",
    "ProtocolOptions",
    "VerifyOptions",
    "arcface_logits",
    "build_face_model",
    "evaluate_face",
    "evaluate_verification",
    "identity_subset",
    "kfold_accuracy",
    "load_faces",
    "make_pairs",
    "parse_identities",
    "read_pairs",
    "train_face",
    "verification_metrics",
]
