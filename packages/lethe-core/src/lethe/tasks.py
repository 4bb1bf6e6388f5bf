"""The task protocol: what a task package registers so that ``benchmarks/run.py`` can run its configs.

A task is one package. It declares its benchmark config as dataclasses (read by
``lethe.config.read_config``) and registers a ``BenchTask`` under the entry-point group
``lethe.tasks`` in its ``pyproject.toml``::

    [project.entry-points."lethe.tasks"]
    classification = "lethe_classification.bench:TASK"

``benchmarks/run.py CONFIG.yaml`` reads the config's ``task`` key, loads that entry point, reads the
YAML into ``TASK.config`` and calls ``TASK.check`` then ``TASK.run`` (or ``rewrite`` / ``merge``).
No runner edit is needed for a new task, and no task imports another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from lethe.config import read_config
from lethe.errors import ConfigError

GROUP = "lethe.tasks"


@dataclass(frozen=True)
class RunOptions:
    """What the runner's command line adds to a config: the config file it came from and the
    subsets or modes a task may take (``BenchTask.options`` says which)."""

    config_path: str | None = None
    #: ``--seeds``: run only these of the config's seeds
    seeds: tuple[int, ...] | None = None
    #: ``--forget-set`` (classification): run only these forget sets of the config
    forget_sets: tuple[str, ...] | None = None
    #: ``--resume`` (segmentation): keep the forget sets the output folder already has
    resume: bool = False
    #: ``--methods`` (classification): run only these of the config's methods (each part keeps the
    #: original and oracle rows; ``--merge`` joins the parts' rows of one seed and forget set)
    methods: tuple[str, ...] | None = None
    #: ``--models-only`` (classification): train and cache these models, then stop ("all",
    #: "originals" or "oracles"; None: a full run)
    models_only: str | None = None


@dataclass(frozen=True)
class BenchTask:
    """A task's benchmark steps. ``config``: the dataclass a YAML reads into (its ``task`` key names
    this task); ``run(config, out, options)`` writes ``out/results.{json,md}``; ``check(config)``
    validates what the dataclass cannot (method settings, sizes) without data; ``rewrite(config,
    out)`` and ``merge(config, parts, out)`` remake a report from committed results; ``options``:
    the runner options beyond ``--seeds`` it takes (``forget_set``, ``methods``, ``resume``, ``models_only``)."""

    name: str
    config: type
    run: Callable[[Any, Path, RunOptions], None]
    check: Callable[[Any], None] | None = None
    rewrite: Callable[[Any, Path], None] | None = None
    merge: Callable[[Any, Sequence[Path], Path], None] | None = None
    options: frozenset[str] = frozenset()

    def read(self, mapping: Mapping[str, Any], where: str = "config") -> Any:
        """The YAML mapping as this task's config (``read_config``), checked (``check``)."""
        config = read_config(self.config, mapping, where)
        if self.check is not None:
            self.check(config)
        return config


def task_names() -> list[str]:
    """The tasks installed packages register, sorted."""
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def get_task(name: str) -> BenchTask:
    """The ``BenchTask`` registered as ``name``; a ConfigError naming the installed tasks otherwise."""
    found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not found:
        raise ConfigError(f"unknown task {name!r}; tasks are {', '.join(task_names()) or 'none installed'}")
    task = found[0].load()
    if not isinstance(task, BenchTask):
        raise ConfigError(f"entry point {found[0].value} of task {name!r} is not a lethe.tasks.BenchTask")
    return task
