"""Method registry, published default settings and string overrides."""

from __future__ import annotations

import dataclasses

import pytest

import lethe
from lethe import parse_assignments
from lethe._registry import build_settings


def test_list_methods():
    methods = lethe.list_methods()
    assert {"delete", "svd"} <= set(methods)
    assert methods == sorted(methods)


def test_delete_published_defaults():
    s = lethe.method_settings("delete")
    assert s.epochs == 20
    assert s.lr == 1e-3
    assert s.momentum == 0.9
    assert s.weight_decay == 0.0
    assert s.temperature == 1.0
    assert s.freeze_bn is True  # our deviation, docs/delete-batchnorm.md


def test_svd_published_defaults():
    s = lethe.method_settings("svd")
    assert s.alpha_r == 100.0
    assert s.alpha_f == 3.0
    assert s.retain_per_class == 100
    assert s.num_forget == 900
    assert s.tune is True
    assert tuple(s.grid_r) == (10, 30, 100, 300, 1000)
    assert tuple(s.grid_f) == (1, 3, 10, 30, 100)


def test_needs_retain_flags():
    assert lethe.get_method("svd").needs_retain is True
    # DELETE can read retained data (use_retain, for backdoor removal) but does not by default
    assert lethe.get_method("delete").needs_retain is True
    assert lethe.method_settings("delete").use_retain is False


@pytest.mark.parametrize(
    "method,key,text,expected",
    [
        ("delete", "lr", "5e-5", 5e-5),
        ("delete", "epochs", "3", 3),
        ("delete", "freeze_bn", "true", True),
        ("delete", "freeze_bn", "0", False),
        ("delete", "ignore_index", "255", 255),
        ("delete", "ignore_index", "none", None),
        ("svd", "tune", "false", False),
        ("svd", "tune", "Yes", True),
        ("svd", "alpha_r", "30", 30.0),
        ("svd", "grid_r", "1,3", (1.0, 3.0)),
        ("svd", "grid_f", "2.5", (2.5,)),
    ],
)
def test_string_overrides_are_converted(method, key, text, expected):
    value = getattr(lethe.method_settings(method, {key: text}), key)
    assert value == expected
    assert type(value) is type(expected)


def test_non_string_overrides_pass_through():
    s = lethe.method_settings("delete", {"lr": 0.5, "epochs": 2})
    assert s.lr == 0.5 and s.epochs == 2


def test_parse_assignments_into_settings():
    overrides = parse_assignments(["lr=5e-5", " epochs = 4 ", "freeze_bn=yes"])
    assert overrides == {"lr": "5e-5", "epochs": "4", "freeze_bn": "yes"}
    s = lethe.method_settings("delete", overrides)
    assert (s.lr, s.epochs, s.freeze_bn) == (5e-5, 4, True)
    assert parse_assignments(None) == {}


@pytest.mark.parametrize("item", ["lr", "=3", "  =x"])
def test_parse_assignments_rejects_malformed(item):
    with pytest.raises(lethe.ConfigError, match="KEY=VALUE"):
        parse_assignments([item])


def test_unknown_method_raises_config_error():
    with pytest.raises(lethe.ConfigError, match="no_such_method") as info:
        lethe.method_settings("no_such_method")
    assert "delete" in str(info.value) and "svd" in str(info.value)  # it lists the choices
    with pytest.raises(lethe.ConfigError, match="no_such_method"):
        lethe.get_method("no_such_method")


@pytest.mark.parametrize("method", ["delete", "svd"])
def test_unknown_setting_raises_config_error(method):
    with pytest.raises(lethe.ConfigError, match="learning_rate"):
        lethe.method_settings(method, {"learning_rate": "1"})


@pytest.mark.parametrize(
    "method,key,text",
    [("delete", "epochs", "2.5"), ("delete", "lr", "fast"), ("svd", "tune", "maybe")],
)
def test_invalid_values_raise_config_error(method, key, text):
    with pytest.raises(lethe.ConfigError, match=key):
        lethe.method_settings(method, {key: text})


def test_config_error_is_a_lethe_error():
    assert issubclass(lethe.ConfigError, lethe.LetheError)


def test_build_settings_on_any_dataclass():
    @dataclasses.dataclass
    class Demo:
        n: int = 1
        scale: float = 2.0

    assert build_settings(Demo, {"n": "7"}) == Demo(n=7)
    with pytest.raises(lethe.ConfigError, match="Demo has no setting 'm'"):
        build_settings(Demo, {"m": "1"})


def test_unlearn_rejects_settings_and_overrides_together(toy):
    with pytest.raises(lethe.ConfigError):
        lethe.unlearn(
            toy.model,
            "delete",
            forget=toy.loader([1]),
            forget_classes=[1],
            settings=lethe.method_settings("delete"),
            overrides={"epochs": 1},
        )


def test_unlearn_unknown_method(toy):
    with pytest.raises(lethe.ConfigError, match="forgetful"):
        lethe.unlearn(toy.model, "forgetful", forget=toy.loader([1]), forget_classes=[1])


def test_register_twice_raises():
    with pytest.raises(ValueError, match="delete"):
        lethe.register_method("delete", object)(lambda *a: None)
