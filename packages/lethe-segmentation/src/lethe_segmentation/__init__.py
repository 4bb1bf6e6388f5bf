"""lethe-segmentation: make a semantic-segmentation model stop labelling a class, per pixel.

Datasets (``camvid``, ``voc``, ``folder:<root>``), albumentations image+mask pipelines,
segmentation-models-pytorch architectures by name, confusion-matrix metrics (per-class IoU,
``miou_retain``, ``iou_forget``, ``recall_forget``, pixel accuracy, where the forgotten pixels
went) and the ``lethe-segment`` CLI. The unlearning methods are the core's (``lethe.unlearn``);
see ``docs/methods.md`` s.1 (DELETE on ``[N, C, H, W]``) and s.3 (segmentation metrics).
"""

from lethe_segmentation.datasets import DATASETS, IGNORE_INDEX, SegBundle, load_dataset
from lethe_segmentation.metrics import segmentation_metrics
from lethe_segmentation.models import MODELS, ModelSpec, build_model

__version__ = "0.1.0"

__all__ = [
    "DATASETS",
    "IGNORE_INDEX",
    "MODELS",
    "ModelSpec",
    "SegBundle",
    "build_model",
    "load_dataset",
    "segmentation_metrics",
]
