"""lethe_classification: class forgetting in image classifiers.

- ``cli``: the ``lethe-classify`` command (train, unlearn, evaluate, bench, import).
- ``bench``: the benchmark of one dataset and model (original, retrain oracle, every method) and
  the multi-run suite; ``run_benchmark`` / ``check_benchmark`` read a benchmark YAML for
  ``benchmarks/run.py``.
- ``speed``: the speed benchmark (issue 7): SVD and DELETE against the papers' procedures.
- ``delete_bn_check``, ``finetune_check``: issue 16's checks (DELETE's loss, weights or BatchNorm
  statistics; how the pretrained encoder carries over), ``benchmarks/delete_bn_check.py`` and
  ``benchmarks/finetune_check.py``.
- ``scale_bench``: the full-width GPU benchmark (``benchmarks/bench_gpu.py``).
- ``report``: the benchmark's Markdown report, ``mean ± std`` tables and plots.

Datasets, models, checkpoints and the training and evaluation protocol are ``lethe_vision``'s.
"""

__version__ = "0.1.0"
