"""Defences on a tiny backdoored problem: DELETE removes the backdoor end to end; every defence
runs on the defender's budget; fine-pruning prunes the least active channels and keeps them pruned."""

from __future__ import annotations

import pytest
import torch
from bd_helpers import colour_bundle

import lethe
from lethe.errors import ConfigError
from lethe.metrics import per_class_accuracy
from lethe_backdoor.attacks import build_attack
from lethe_backdoor.budget import make_budget
from lethe_backdoor.defences import DEFENCES, defence_settings, list_defences, prune_until, run_defence
from lethe_backdoor.metrics import evaluate_backdoor, outputs_on
from lethe_backdoor.poison import make_backdoor_splits
from lethe_vision.pipeline import TrainRecipe, model_spec, train_model


def quiet_engine(seed: int = 0) -> lethe.Engine:
    return lethe.Engine(device="cpu", progress=False, seed=seed)


@pytest.fixture(scope="module")
def backdoored():
    """4 colour classes (16x16), BadNets 3x3 checkerboard to class 0 at rate 0.1, small-cnn."""
    bundle = colour_bundle(train_per_class=100, test_per_class=30, seed=0)
    splits = make_backdoor_splits(bundle, build_attack("badnets"), val_fraction=0.2, seed=0)
    engine = quiet_engine()
    recipe = TrainRecipe(epochs=15, batch_size=32, lr=0.05, warmup_epochs=0)
    model, _, _ = train_model(model_spec("small-cnn", bundle, 16), splits.train, bundle, recipe, engine)
    return model, splits, evaluate_backdoor(model, splits, engine)


def test_list_defences():
    names = list_defences()
    assert {"delete", "svd", "finetune", "fine_pruning", "random_label", "gradient_ascent"} <= set(names)
    assert names == sorted(names)
    assert DEFENCES.get("fine_pruning")[0].paper.startswith("Liu et al.")


def test_defence_settings():
    assert defence_settings("fine_pruning").acc_ratio == 0.1
    assert defence_settings("fine_pruning", {"max_ratio": "0.5"}).max_ratio == 0.5
    assert defence_settings("delete", {"epochs": "3"}).epochs == 3
    with pytest.raises(ConfigError, match="unknown defence 'vaccine'"):
        defence_settings("vaccine")
    with pytest.raises(ConfigError, match="no setting 'depth'"):
        defence_settings("fine_pruning", {"depth": "2"})


def per_class(model, splits) -> list[float]:
    return per_class_accuracy(outputs_on(model, splits.test, splits.bundle, quiet_engine()), splits.bundle.num_classes)


@pytest.fixture(scope="module")
def deleted(backdoored):
    """DELETE with its published defaults on 32 stamped images (classes 1-3, labelled 0)."""
    model, splits, _ = backdoored
    budget = make_budget(splits, "0.1")
    return run_defence(model, "delete", budget, splits.bundle, quiet_engine(), batch_size=32)


def test_delete_removes_the_backdoor(backdoored, deleted):
    model, splits, before = backdoored
    assert before["asr"] >= 95.0 and before["clean_acc"] >= 95.0  # the attack worked
    defended, record = deleted
    after = evaluate_backdoor(defended, splits, quiet_engine())
    assert after["asr"] <= 5.0, after
    assert after["robust_acc"] >= 90.0, after  # stamped images go back to their true class
    assert min(per_class(defended, splits)[1:]) >= 95.0  # the other classes are kept
    assert record.method == "delete" and record.forget_classes == [0]
    assert record.extra["budget"] == {"budget": "0.1", "source": "stamp", "stamped": 32, "clean": 32}
    assert evaluate_backdoor(model, splits, quiet_engine()) == before  # the original model is untouched


def test_delete_keeps_the_clean_target_class(deleted, backdoored):
    """The backdoor package's DELETE anchors on the clean budget (``use_retain``); without it the
    target class is forgotten on clean images too (its retention term never sees the target logit)."""
    _, splits, _ = backdoored
    assert deleted[1].settings["use_retain"] is True
    assert per_class(deleted[0], splits)[0] >= 90.0


def test_svd_removes_the_backdoor_and_keeps_clean_accuracy(backdoored):
    model, splits, before = backdoored
    budget = make_budget(splits, "0.1")
    defended, record = run_defence(model, "svd", budget, splits.bundle, quiet_engine(), batch_size=32)
    after = evaluate_backdoor(defended, splits, quiet_engine())
    assert after["asr"] <= 5.0 and after["robust_acc"] >= 90.0, after
    assert after["clean_acc"] >= before["clean_acc"] - 5.0, after
    assert record.extra["tuned"] is True  # alphas chosen on the held-out part of the budget


@pytest.mark.parametrize("method", ["svd", "finetune", "fine_pruning", "random_label", "gradient_ascent"])
def test_every_defence_runs_on_the_budget(backdoored, method):
    model, splits, _ = backdoored
    budget = make_budget(splits, "0.05")
    overrides = {"epochs": 1} if method != "svd" else {"grid_r": (10.0, 100.0), "grid_f": (3.0,)}
    defended, record = run_defence(model, method, budget, splits.bundle, quiet_engine(), overrides, batch_size=16)
    assert record.method == method and record.seconds > 0
    assert record.extra["budget"]["stamped"] == 16
    assert any(
        not torch.equal(a, b) for a, b in zip(model.state_dict().values(), defended.state_dict().values(), strict=True)
    )
    if method == "svd":  # tuned on a held-out part of the budget, never on test data
        assert record.extra["tuned"] is True and len(record.extra["grid"]) == 2
        assert record.extra["tuned_on"] == {"stamped": 3, "clean": 3}
        assert record.extra["forget_samples"] == 13


def test_fine_pruning_keeps_pruned_channels_zero(backdoored):
    model, splits, _ = backdoored
    budget = make_budget(splits, "0.1")
    defended, record = run_defence(
        model, "fine_pruning", budget, splits.bundle, quiet_engine(), {"epochs": 2, "acc_ratio": 1.0}, batch_size=16
    )
    head = [m for m in defended.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert set(defended.state_dict()) == set(model.state_dict())  # no weight_orig / weight_mask left
    pruned = record.extra["pruned_channels"]
    assert record.extra["pruned"] == len(pruned) == int(0.8 * head.in_features)  # max_ratio reached
    assert (head.weight[:, pruned] == 0).all()
    assert (head.weight[:, [c for c in range(head.in_features) if c not in pruned]] != 0).any()
    assert len(record.log) == 2


def test_prune_until_follows_activation_order_and_stops_on_accuracy():
    # 4 channels; channel 3 carries the label, channels 0-2 are increasingly active noise
    labels = torch.tensor([0, 1, 0, 1])
    features = torch.tensor([[0.1, 1.0, 2.0, 0.0], [0.1, 1.0, 2.0, 5.0], [0.1, 1.0, 2.0, 0.0], [0.1, 1.0, 2.0, 5.0]])
    weight = torch.tensor([[0.0, 0.0, 0.0, -1.0], [0.0, 0.0, 0.0, 1.0]])
    keep, curve = prune_until(features, labels, weight, None, acc_ratio=0.1, max_ratio=1.0)
    assert keep.tolist() == [False, False, False, True]  # least active first; pruning channel 3 would hurt
    assert curve == [100.0, 100.0, 100.0, 100.0, 50.0]
    keep, _ = prune_until(features, labels, weight, None, acc_ratio=0.1, max_ratio=0.0)
    assert keep.all()


def test_fine_pruning_needs_a_linear_head(backdoored):
    _, splits, _ = backdoored
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4), torch.nn.Tanh())
    with pytest.raises(ConfigError, match="last nn.Linear"):
        run_defence(model, "fine_pruning", make_budget(splits, "4"), splits.bundle, quiet_engine())
