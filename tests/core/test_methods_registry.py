"""Every registered method, timm style: one parametrised case per ``lethe.list_methods()`` entry.

A method added to the registry is checked here without a test of its own: it documents its source,
its settings all have defaults, and it runs end to end on the toy problem with its cheapest settings.
"""

from __future__ import annotations

import dataclasses
import re
import sys

import pytest

import lethe
from lethe.checkpoint import state_equal

METHODS = lethe.list_methods()
NEEDS_RETAIN = [  # methods that read retained data with their default settings
    name
    for name in METHODS
    if lethe.get_method(name).needs_retain and getattr(lethe.method_settings(name), "use_retain", True)
]
FORGET = [1]
YEAR = re.compile(r"\b(19|20)\d\d\b")


def cheapest(name: str) -> dict:
    """Overrides that make a run of ``name`` take a fraction of a second on the toy."""
    fields = {f.name for f in dataclasses.fields(lethe.get_method(name).settings_cls)}
    overrides = {"epochs": 1} if "epochs" in fields else {}
    if "tune" in fields:
        overrides["tune"] = False  # svd: one projection instead of a 25-point grid
    return overrides


def test_registry_is_not_empty():
    assert len(METHODS) >= 2 and NEEDS_RETAIN


@pytest.mark.parametrize("name", METHODS)
def test_settings_are_a_dataclass_with_every_default(name):
    cls = lethe.get_method(name).settings_cls
    assert dataclasses.is_dataclass(cls) and isinstance(cls, type)
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    assert missing == [], f"{name}: settings without a default: {missing}"
    assert lethe.method_settings(name) == cls()


@pytest.mark.parametrize("name", METHODS)
def test_paper_citation_and_module_docstring(name):
    entry = lethe.get_method(name)
    assert entry.name == name
    assert entry.paper.strip() and YEAR.search(entry.paper), f"{name}: paper {entry.paper!r} names no year"
    doc = sys.modules[entry.fn.__module__].__doc__
    assert doc and doc.strip(), f"{entry.fn.__module__} has no module docstring"


@pytest.mark.parametrize("name", METHODS)
def test_cheapest_run_on_the_toy(toy, name):
    """Retained data only where the method needs it, so the others are shown to run without."""
    entry = lethe.get_method(name)
    snapshot = toy.fresh_model()
    model, record = toy.unlearn(name, FORGET, retain=entry.needs_retain, overrides=cheapest(name))
    assert model is not toy.model
    assert not model.training
    assert state_equal(toy.model, snapshot)  # the original is untouched
    before = {k: v.shape for k, v in toy.model.state_dict().items()}
    after = {k: v.shape for k, v in model.state_dict().items()}
    assert after == before
    assert record.method == name
    assert record.forget_classes == FORGET
    assert record.seconds > 0
    assert record.settings == dataclasses.asdict(lethe.method_settings(name, cheapest(name)))


@pytest.mark.parametrize("name", NEEDS_RETAIN)
def test_missing_retain_raises(toy, name):
    with pytest.raises(lethe.DataError, match="retain"):
        toy.unlearn(name, FORGET, retain=False, overrides=cheapest(name))
