"""``make bench-gpu``: the papers' CIFAR-10 scale on one GPU in minutes (issue 17).

``python benchmarks/bench_gpu.py --out DIR`` on a CUDA machine; ``--smoke`` runs the same stages on
generated data on the CPU in seconds. What it runs: ``lethe_classification.scale_bench``.
"""

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lethe_classification.scale_bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
