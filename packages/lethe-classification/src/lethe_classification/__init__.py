"""lethe_classification: class forgetting in image classifiers.

- ``cli``: the ``lethe-classify`` command (train, unlearn, evaluate, bench, import).
- ``bench``: the benchmark of one dataset and model (original, retrain oracle, every method) and
  the multi-run suite.
- ``scale_bench``: the full-width GPU benchmark (``benchmarks/bench_gpu.py``).
- ``report``: the benchmark's Markdown report, ``mean ± std`` tables and plots.

Datasets, models, checkpoints and the training and evaluation protocol are ``lethe_vision``'s.
"""

__version__ = "0.1.0"
