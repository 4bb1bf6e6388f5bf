"""Triggers: patch placement and patterns, blending, validation, the registry."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lethe.errors import ConfigError
from lethe_backdoor.attacks import (
    ATTACKS,
    BadNets,
    Blended,
    attack_from_dict,
    attack_settings,
    build_attack,
    list_attacks,
)


def grey(n: int = 2, c: int = 3, h: int = 8, w: int = 8, value: int = 100) -> torch.Tensor:
    return torch.full((n, c, h, w), value, dtype=torch.uint8)


def changed(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Boolean [N, H, W]: pixels where any channel differs."""
    return (before != after).any(dim=1)


def test_registry_lists_both_attacks_with_defaults():
    assert list_attacks() == ["badnets", "blended"]
    assert ATTACKS.get("badnets")[0] is BadNets and ATTACKS.get("blended")[0] is Blended
    bad = attack_settings("badnets")
    assert (bad.target, bad.rate, bad.size, bad.pattern, bad.position) == (0, 0.1, 3, "checkerboard", "bottom-right")
    blend = attack_settings("blended")
    assert (blend.target, blend.rate, blend.alpha) == (0, 0.1, 0.2)


def test_unknown_attack_names_the_choices():
    with pytest.raises(ConfigError, match="unknown attack 'trojan'.*badnets.*blended"):
        build_attack("trojan")


def test_settings_from_strings_and_unknown_setting():
    attack = build_attack("badnets", {"size": "4", "rate": "0.05", "position": "top-left"})
    assert attack.settings.size == 4 and attack.rate == 0.05
    with pytest.raises(ConfigError, match="no setting 'colour'"):
        build_attack("badnets", {"colour": "red"})


@pytest.mark.parametrize(
    "position,rows,cols",
    [
        ("bottom-right", (5, 8), (5, 8)),
        ("bottom-left", (5, 8), (0, 3)),
        ("top-right", (0, 3), (5, 8)),
        ("top-left", (0, 3), (0, 3)),
    ],
)
def test_corner_patch_placement(position, rows, cols):
    images = grey()
    out = build_attack("badnets", {"position": position}).stamp(images)
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[rows[0] : rows[1], cols[0] : cols[1]] = True
    assert torch.equal(changed(images, out)[0], expected)
    assert torch.equal(changed(images, out)[1], expected)


def test_margin_moves_the_patch_inwards():
    out = build_attack("badnets", {"margin": 1}).stamp(grey())
    assert torch.equal(out[0, 0, 4:7, 4:7], build_attack("badnets").patch(3)[0])
    assert (out[0, :, 7, :] == 100).all() and (out[0, :, :, 7] == 100).all()


def test_checkerboard_and_white_patterns():
    board = build_attack("badnets").patch(3)
    assert board.dtype == torch.uint8 and board.shape == (3, 3, 3)
    assert board[0].tolist() == [[255, 0, 255], [0, 255, 0], [255, 0, 255]]
    assert (build_attack("badnets", {"pattern": "white"}).patch(1) == 255).all()
    random_a = build_attack("badnets", {"pattern": "random", "size": 5}).patch(1)
    random_b = build_attack("badnets", {"pattern": "random", "size": 5}).patch(1)
    assert torch.equal(random_a, random_b) and set(random_a.unique().tolist()) <= {0, 255}


def test_stamp_keeps_the_input_and_the_rest_of_the_image():
    images = torch.randint(0, 256, (4, 1, 10, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    before = images.clone()
    out = build_attack("badnets").stamp(images)
    assert torch.equal(images, before)  # not modified in place
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert torch.equal(out[..., :7, :], images[..., :7, :]) and torch.equal(out[..., :, :9], images[..., :, :9])


def test_random_position_is_per_image_and_seeded():
    attack = build_attack("badnets", {"position": "random", "size": 2, "pattern": "white"})
    images = grey(n=30, c=1, h=10, w=10, value=0)
    a = attack.stamp(images, torch.Generator().manual_seed(1))
    b = attack.stamp(images, torch.Generator().manual_seed(1))
    c = attack.stamp(images, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    mask = changed(images, a)
    assert (mask.sum(dim=(1, 2)) == 4).all()  # one 2x2 patch per image
    corners = {tuple(torch.nonzero(m)[0].tolist()) for m in mask}
    assert len(corners) > 5  # positions vary


@pytest.mark.parametrize(
    "overrides,shape",
    [({"size": 9}, (8, 8)), ({"size": 5}, (4, 16)), ({"size": 8, "margin": 1}, (8, 8)), ({"size": 33}, (32, 32))],
)
def test_trigger_larger_than_the_image(overrides, shape):
    attack = build_attack("badnets", overrides)
    with pytest.raises(ConfigError, match="larger than the"):
        attack.check((3, *shape), 10)
    with pytest.raises(ConfigError, match="larger than the"):
        attack.stamp(torch.zeros(1, 3, *shape, dtype=torch.uint8))


def test_trigger_as_large_as_the_image_fits():
    attack = build_attack("badnets", {"size": 8, "pattern": "white"})
    attack.check((1, 8, 8), 2)
    assert (attack.stamp(grey(c=1)) == 255).all()


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"size": 0}, "at least 1"),
        ({"margin": -1}, "margin"),
        ({"pattern": "stars"}, "unknown trigger pattern"),
        ({"position": "middle"}, "unknown trigger position"),
    ],
)
def test_bad_badnets_settings(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_attack("badnets", overrides)


@pytest.mark.parametrize("name", ["badnets", "blended"])
@pytest.mark.parametrize("rate", [0.0, -0.1, 1.5, float("nan")])
def test_rate_outside_zero_one(name, rate):
    with pytest.raises(ConfigError, match=r"poisoning rate must be in \(0, 1\]"):
        build_attack(name, {"rate": rate})


@pytest.mark.parametrize("name", ["badnets", "blended"])
def test_rate_one_is_allowed(name):
    assert build_attack(name, {"rate": 1.0}).rate == 1.0


@pytest.mark.parametrize("target", [-1, 10, 11])
def test_target_out_of_range(target):
    attack = build_attack("badnets", {"target": target})
    with pytest.raises(ConfigError, match=r"target label .* out of range.*0\.\.9"):
        attack.check((3, 32, 32), 10)


def test_blend_ratio():
    images = torch.randint(0, 256, (3, 3, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    attack = build_attack("blended", {"alpha": 0.25})
    pattern = attack.pattern(3, 6, 6)
    out = attack.stamp(images)
    expected = (0.75 * images.float() + 0.25 * pattern.float()).round()
    assert out.dtype == torch.uint8
    assert (out.float() - expected).abs().max() <= 0.5
    full = build_attack("blended", {"alpha": 1.0}).stamp(images)
    assert (full == pattern).all()  # alpha 1: the pattern alone
    assert torch.equal(attack.pattern(3, 6, 6), pattern)  # seeded: the same pattern every time
    assert not torch.equal(build_attack("blended", {"pattern_seed": 1}).pattern(3, 6, 6), pattern)


@pytest.mark.parametrize("alpha", [0.0, -0.2, 1.01])
def test_blend_ratio_out_of_range(alpha):
    with pytest.raises(ConfigError, match="blend ratio"):
        build_attack("blended", {"alpha": alpha})


def test_stamp_refuses_float_images():
    with pytest.raises(ConfigError, match="uint8"):
        build_attack("blended").stamp(torch.zeros(1, 3, 4, 4))


@pytest.mark.parametrize("name", ["badnets", "blended"])
def test_round_trip_through_a_dict(name):
    attack = build_attack(name, {"target": 2, "rate": 0.05})
    again = attack_from_dict(attack.to_dict())
    assert type(again) is type(attack)
    assert dataclasses.asdict(again.settings) == dataclasses.asdict(attack.settings)
    assert name in attack.describe() and "target=2" in attack.describe()
