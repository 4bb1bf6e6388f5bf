"""``lethe.weights``: reading state dicts, pairing by position, and copying weights into a model
whose head and input channels differ."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from lethe.errors import CheckpointError
from lethe.weights import Layout, adapt_input_conv, layout, pair_in_order, read_state_dict, transfer


def net(channels: int = 3, classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, classes),
    )


def test_read_state_dict_formats(tmp_path):
    state = net().state_dict()
    torch.save(state, tmp_path / "plain.pth")
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "nested.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    for name in ("plain.pth", "nested.pt", "w.safetensors"):
        read = read_state_dict(tmp_path / name)
        assert read.keys() == state.keys() and all(torch.equal(read[k], state[k]) for k in state)


def test_read_state_dict_errors(tmp_path):
    with pytest.raises(CheckpointError, match="weights file not found"):
        read_state_dict(tmp_path / "absent.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk" * 10)
    with pytest.raises(CheckpointError, match="not a readable state dict"):
        read_state_dict(tmp_path / "junk.pth")
    torch.save({"lr": 0.1}, tmp_path / "nothing.pth")
    with pytest.raises(CheckpointError, match="holds no state dict"):
        read_state_dict(tmp_path / "nothing.pth")


def test_pair_in_order_renames_by_position():
    reference = net().state_dict()
    other = {f"x{i}": v.clone() for i, v in enumerate(reference.values())}
    assert list(pair_in_order(other, reference, "w")) == list(reference)
    with pytest.raises(CheckpointError, match="tensor x0 .* pairs with 0.weight"):
        pair_in_order(other, net(channels=1).state_dict(), "w")
    with pytest.raises(CheckpointError, match="has 10 tensors, the architecture 9"):
        pair_in_order({**other, "extra": torch.zeros(1)}, reference, "w")


def test_layout_finds_first_conv_and_head():
    assert layout(net()) == Layout("0", ("5",))


def test_transfer_keeps_backbone_zeroes_a_resized_head_and_adapts_channels():
    source = net()
    source[1].running_mean.fill_(0.5)
    target = net(channels=1, classes=4)
    report = transfer(target, source.state_dict(), "w", head=("5",), first_conv="0")
    assert torch.equal(target[1].running_mean, source[1].running_mean)
    assert torch.allclose(target[0].weight, source[0].weight.sum(1, keepdim=True))
    assert not target[5].weight.any() and not target[5].bias.any()  # a re-sized head starts at zero
    assert report.new_head == ["5.weight", "5.bias"] and report.loaded == 7
    assert adapt_input_conv(torch.ones(2, 3, 1, 1), 4).shape == (2, 4, 1, 1)


def test_transfer_rejects_what_does_not_fit():
    state = net().state_dict()
    with pytest.raises(CheckpointError, match=r"0.weight is \(4, 3, 3, 3\) in the weights, \(4, 1, 3, 3\)"):
        transfer(net(channels=1), state, "w", head=("5",))
    with pytest.raises(CheckpointError, match=r"5.weight is \(10, 4\) in the weights, \(4, 4\)"):
        transfer(net(classes=4), state, "w")
    with pytest.raises(CheckpointError, match="has no tensor 1.weight"):
        transfer(net(), {k: v for k, v in state.items() if k != "1.weight"}, "w")
    with pytest.raises(CheckpointError, match="the model has no tensor extra"):
        transfer(net(), {**state, "extra": torch.zeros(1)}, "w")
    encoder = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    report = transfer(encoder, state, "w", partial=True)  # an encoder takes part of a network
    assert report.unused == ["5.weight", "5.bias"]
    no_counters = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert transfer(net(), no_counters, "w").loaded == 8
