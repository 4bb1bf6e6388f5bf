"""lethe.config.read_config: nested dataclasses from a YAML mapping, one-line errors by key path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

import lethe
from lethe.config import config_dict, read_config
from lethe.errors import ConfigError
from lethe.tasks import BenchTask, get_task, task_names


@dataclass(kw_only=True)
class Model:
    arch: str
    width: int | None = lethe.setting(None, ge=1)


@dataclass(kw_only=True)
class Config:
    name: str
    model: Model
    lr: float = 0.1
    seeds: tuple[int, ...] = lethe.setting((0,), min_items=1)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: Any = None
    optional_model: Model | None = None

    def __post_init__(self) -> None:
        if self.name == "forbidden":
            raise ConfigError("name must not be 'forbidden'")


def test_reads_nested_sections_lists_and_mappings():
    config = read_config(
        Config,
        {"name": "a", "model": {"arch": "cnn", "width": 8}, "lr": 1, "seeds": [1, 2], "overrides": {"d": {"x": 1}}},
    )
    assert config.model == Model(arch="cnn", width=8)
    assert config.lr == 1.0 and isinstance(config.lr, float)
    assert config.seeds == (1, 2) and config.overrides == {"d": {"x": 1}}
    assert config_dict(config)["seeds"] == [1, 2]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"name": "a", "model": {"arch": "c", "widht": 2}}, "config.model has no key 'widht' (did you mean 'width'?)"),
        ({"name": "a"}, "config needs 'model'"),
        ({"name": "a", "model": {}}, "config.model needs 'arch'"),
        ({"name": "a", "model": {"arch": "c", "width": 0}}, "config.model.width must be an integer, at least 1"),
        ({"name": "a", "model": {"arch": "c"}, "lr": "fast"}, "config.lr must be a finite number, got 'fast'"),
        ({"name": "a", "model": {"arch": "c"}, "lr": True}, "config.lr must be a finite number, got True"),
        ({"name": "a", "model": {"arch": "c"}, "seeds": 0}, "config.seeds must be a list, got 0"),
        ({"name": "a", "model": {"arch": "c"}, "seeds": []}, "config.seeds must be a non-empty list of integers"),
        ({"name": "a", "model": {"arch": "c"}, "seeds": [0, "x"]}, "config.seeds[1] must be an integer, got 'x'"),
        ({"name": "a", "model": "cnn"}, "config.model must be a mapping of keys to values, got 'cnn'"),
        ({"name": "a", "model": {"arch": "c"}, "overrides": [1]}, "config.overrides must be a mapping, got [1]"),
        ({"name": "a", "model": None}, "config.model must be Model, got none"),
        ({"name": "forbidden", "model": {"arch": "c"}}, "name must not be 'forbidden'"),
        (["name"], "config must be a mapping of keys to values"),
    ],
)
def test_errors_name_the_key_path(mapping, message):
    with pytest.raises(ConfigError) as err:
        read_config(Config, mapping)
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


def test_optional_section_takes_none_or_a_mapping():
    assert read_config(Config, {"name": "a", "model": {"arch": "c"}, "optional_model": None}).optional_model is None
    got = read_config(Config, {"name": "a", "model": {"arch": "c"}, "optional_model": {"arch": "d"}})
    assert got.optional_model == Model(arch="d")


def test_every_installed_task_is_a_bench_task():
    names = task_names()
    assert {"classification", "segmentation", "face", "backdoor"} <= set(names)
    for name in names:
        assert isinstance(get_task(name), BenchTask)


def test_unknown_task_names_the_installed_ones():
    with pytest.raises(ConfigError, match="unknown task 'nope'; tasks are .*classification"):
        get_task("nope")
