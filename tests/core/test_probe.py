"""probe_forget: a linear probe on penultimate features (methods.md s.3)."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lethe.probe import collect_features, head_layer, probe_accuracy, probe_forget


def test_head_layer_is_last_linear(toy):
    model = toy.fresh_model()
    assert head_layer(model) is model[-1]


def test_collect_features_are_head_inputs(toy):
    model = toy.fresh_model()
    feats, labels = collect_features(model, toy.loader(val=True))
    assert feats.shape == (len(toy.val_y), 8)
    assert torch.equal(labels, toy.val_y)
    with torch.no_grad():
        logits = model[-1](feats.clone())
        expected = model(toy.val_x)
    assert torch.allclose(logits, expected, atol=1e-5)


def test_probe_accuracy_on_hand_made_features():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 2
    x = torch.randn(200, 3, generator=g) * 0.1
    x[:, 0] += y.float() * 4  # class readable from feature 0
    assert probe_accuracy(x, y, x[:50], y[:50]) == 100.0
    noise = torch.randn(200, 3, generator=g)
    assert probe_accuracy(noise[:100], y[:100], noise[100:], y[100:]) < 75.0


def test_probe_reads_class_the_head_no_longer_predicts(toy):
    """Zeroing the head's row for class 1 removes it from the outputs, not from the features."""
    model = toy.fresh_model()
    with torch.no_grad():
        model[-1].weight[1] = 0
        model[-1].bias[1] = -100
    forget_test = toy.loader([1], val=True)
    assert probe_forget(model, toy.loader(), forget_test) > 90.0


def test_probe_on_features_without_class_information():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.Linear(4, 3))
    with torch.no_grad():
        model[1].weight.zero_()  # features carry no information
        model[1].bias.zero_()
    x = torch.randn(90, 4)
    y = torch.arange(90) % 3
    train = DataLoader(TensorDataset(x, y), batch_size=30)
    forget = DataLoader(TensorDataset(x[y == 1], y[y == 1]), batch_size=30)
    assert probe_forget(model, train, forget) < 60.0
