"""The DELETE loss (methods.md s.1) against KL divergences computed directly in the test."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lethe.losses import class_mask, masked_distillation_loss, masked_teacher_distribution


def as_rows(logits: torch.Tensor) -> torch.Tensor:
    """[N, C, *spatial] -> [N * prod(spatial), C] (per-pixel rows), float64."""
    c = logits.shape[1]
    return logits.double().permute(0, *range(2, logits.dim()), 1).reshape(-1, c)


def reference_rows(student, teacher, classes, temperature=1.0):
    """Per-row KL(p || q) with p = softmax(masked teacher / T), q = softmax(student / T)."""
    s, t = as_rows(student), as_rows(teacher)
    t = t.clone()
    t[:, list(classes)] = float("-inf")  # exactly zero teacher mass on the masked classes
    p = torch.softmax(t / temperature, dim=1)
    log_q = torch.log_softmax(s / temperature, dim=1)
    return F.kl_div(log_q, p, reduction="none").sum(dim=1)


def reference_loss(student, teacher, classes, temperature=1.0):
    return reference_rows(student, teacher, classes, temperature).mean() * temperature**2


SHAPES = [(6, 5), (2, 5, 3, 4)]


@pytest.mark.parametrize("shape", SHAPES, ids=["NC", "NCHW"])
@pytest.mark.parametrize("classes", [[2], [0, 3]])
def test_loss_matches_direct_kl(shape, classes):
    student = torch.randn(shape) * 3
    teacher = torch.randn(shape) * 3
    out = masked_distillation_loss(student, teacher, classes)
    expected = reference_loss(student, teacher, classes)
    torch.testing.assert_close(out.loss.double(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES, ids=["NC", "NCHW"])
def test_multi_class_masking_masks_every_class(shape):
    student = torch.randn(shape)
    teacher = torch.randn(shape)
    both = masked_distillation_loss(student, teacher, [1, 3]).loss
    torch.testing.assert_close(both.double(), reference_loss(student, teacher, [1, 3]))
    only_one = reference_loss(student, teacher, [1])
    assert not torch.isclose(both.double(), only_one, rtol=1e-3)


def test_target_has_no_mass_on_masked_classes():
    teacher = torch.randn(8, 6)
    teacher[:, 2] = 50.0  # the teacher is sure about a class we forget
    teacher[:, 4] = 40.0
    mask = class_mask([2, 4], 6)
    p = masked_teacher_distribution(teacher, mask)
    assert p[:, [2, 4]].max().item() < 1e-30
    torch.testing.assert_close(p.sum(dim=1), torch.ones(8))
    # The rest keeps the teacher's relative preferences ("dark knowledge").
    keep = [0, 1, 3, 5]
    torch.testing.assert_close(p[:, keep], torch.softmax(teacher[:, keep], dim=1))


def test_class_mask():
    assert class_mask([0, 2], 4).tolist() == [True, False, True, False]
    assert class_mask(torch.tensor([3]), 4).tolist() == [False, False, False, True]
    assert class_mask([], 3).tolist() == [False, False, False]
    given = torch.tensor([[True, False], [False, True]])
    assert torch.equal(class_mask(given, 2), given)
    for bad in ([4], [-1]):
        with pytest.raises(ValueError):
            class_mask(bad, 4)


@pytest.mark.parametrize("shape", SHAPES, ids=["NC", "NCHW"])
@pytest.mark.parametrize("classes", [[1], [0, 4]])
def test_decomposition_identity(shape, classes):
    """KL(p||q) = KL(p||q~) - log(1 - qF): forget_term is -log(1-qF), retain_term KL(p||q~)."""
    student = torch.randn(shape) * 2
    teacher = torch.randn(shape) * 2
    out = masked_distillation_loss(student, teacher, classes)

    s, t = as_rows(student), as_rows(teacher)
    num_classes = s.shape[1]
    keep = [c for c in range(num_classes) if c not in classes]
    q = torch.softmax(s, dim=1)
    q_forget = q[:, classes].sum(dim=1)
    q_tilde = q[:, keep] / (1 - q_forget).unsqueeze(1)
    p = torch.softmax(t[:, keep], dim=1)  # masked teacher restricted to the kept classes
    kl_keep = (p * (p.log() - q_tilde.log())).sum(dim=1)
    forget = -torch.log1p(-q_forget)

    torch.testing.assert_close(out.forget_term.double(), forget.mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.retain_term.double(), kl_keep.mean(), rtol=1e-5, atol=1e-6)
    total = reference_loss(student, teacher, classes)
    torch.testing.assert_close((kl_keep + forget).mean(), total)
    torch.testing.assert_close((out.forget_term + out.retain_term).double(), out.loss.double(), rtol=1e-5, atol=1e-6)


def test_forget_term_grows_with_mass_on_forgotten_class():
    teacher = torch.zeros(1, 3)
    low = masked_distillation_loss(torch.tensor([[0.0, 0.0, -5.0]]), teacher, [2])
    high = masked_distillation_loss(torch.tensor([[0.0, 0.0, 5.0]]), teacher, [2])
    assert high.forget_term > low.forget_term > 0
    # Same renormalised distribution over the kept classes: the retain terms agree.
    torch.testing.assert_close(high.retain_term, low.retain_term)


@pytest.mark.parametrize("temperature", [2.0, 4.0])
def test_temperature_scaling(temperature):
    student = torch.randn(5, 6) * 3
    teacher = torch.randn(5, 6) * 3
    out = masked_distillation_loss(student, teacher, [1], temperature=temperature)
    expected = reference_loss(student, teacher, [1], temperature)
    torch.testing.assert_close(out.loss.double(), expected, rtol=1e-5, atol=1e-6)
    # T^2 * (the T = 1 loss on logits divided by T).
    plain = masked_distillation_loss(student / temperature, teacher / temperature, [1]).loss
    torch.testing.assert_close(out.loss, plain * temperature**2, rtol=1e-5, atol=1e-6)


def test_valid_mask_excludes_rows():
    student = torch.randn(2, 4, 3, 3)
    teacher = torch.randn(2, 4, 3, 3)
    valid = torch.rand(2, 3, 3) > 0.4
    valid[0, 0, 0] = False
    valid[1, 2, 2] = True
    out = masked_distillation_loss(student, teacher, [2], valid=valid)
    rows = reference_rows(student, teacher, [2])
    expected = rows[valid.reshape(-1)].mean()
    torch.testing.assert_close(out.loss.double(), expected, rtol=1e-5, atol=1e-6)

    # Whatever the logits on invalid pixels, the loss is the same.
    s2, t2 = student.clone(), teacher.clone()
    invalid = ~valid
    s2.permute(0, 2, 3, 1)[invalid] = torch.randn(int(invalid.sum()), 4) * 10
    t2.permute(0, 2, 3, 1)[invalid] = torch.randn(int(invalid.sum()), 4) * 10
    again = masked_distillation_loss(s2, t2, [2], valid=valid)
    torch.testing.assert_close(again.loss, out.loss)
    torch.testing.assert_close(again.forget_term, out.forget_term)
    torch.testing.assert_close(again.retain_term, out.retain_term)
    # ... while without the mask it changes.
    unmasked = masked_distillation_loss(s2, t2, [2]).loss
    assert not torch.isclose(unmasked, out.loss, rtol=1e-3)


def test_valid_mask_on_classification_rows():
    student = torch.randn(6, 5)
    teacher = torch.randn(6, 5)
    valid = torch.tensor([True, False, True, True, False, True])
    out = masked_distillation_loss(student, teacher, [0], valid=valid)
    expected = masked_distillation_loss(student[valid], teacher[valid], [0]).loss
    torch.testing.assert_close(out.loss, expected)


def test_weight_is_a_weighted_mean():
    student = torch.randn(4, 5)
    teacher = torch.randn(4, 5)
    weight = torch.tensor([1.0, 2.0, 0.5, 3.0])
    out = masked_distillation_loss(student, teacher, [3], weight=weight)
    rows = reference_rows(student, teacher, [3])
    expected = (rows * weight.double()).sum() / weight.double().sum()
    torch.testing.assert_close(out.loss.double(), expected, rtol=1e-5, atol=1e-6)
    # An integer weight of 2 on a row is the same as that row appearing twice.
    w2 = torch.tensor([1.0, 2.0, 1.0, 1.0])
    doubled = masked_distillation_loss(student, teacher, [3], weight=w2).loss
    rep = [0, 1, 1, 2, 3]
    torch.testing.assert_close(doubled, masked_distillation_loss(student[rep], teacher[rep], [3]).loss)


def test_weight_and_valid_combine():
    student = torch.randn(4, 3)
    teacher = torch.randn(4, 3)
    weight = torch.tensor([1.0, 5.0, 2.0, 1.0])
    valid = torch.tensor([True, False, True, True])
    out = masked_distillation_loss(student, teacher, [1], weight=weight, valid=valid)
    rows = reference_rows(student, teacher, [1])
    w = weight.double() * valid.double()
    torch.testing.assert_close(out.loss.double(), (rows * w).sum() / w.sum(), rtol=1e-5, atol=1e-6)


def test_per_row_mask():
    """A boolean [rows, C] mask masks a different class in each row (e.g. backdoor targets)."""
    student = torch.randn(3, 4)
    teacher = torch.randn(3, 4)
    targets = [0, 2, 3]
    mask = F.one_hot(torch.tensor(targets), 4).bool()
    out = masked_distillation_loss(student, teacher, mask)
    expected = torch.stack(
        [reference_rows(student[i : i + 1], teacher[i : i + 1], [c]) for i, c in enumerate(targets)]
    ).mean()
    torch.testing.assert_close(out.loss.double(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "student_shape,teacher_shape",
    [((4, 5), (4, 6)), ((4, 5), (3, 5)), ((2, 3, 4, 4), (2, 3, 4, 5))],
)
def test_shape_mismatch_raises(student_shape, teacher_shape):
    with pytest.raises(ValueError, match="shape"):
        masked_distillation_loss(torch.randn(student_shape), torch.randn(teacher_shape), [0])


def test_one_dimensional_logits_raise():
    with pytest.raises(ValueError):
        masked_distillation_loss(torch.randn(5), torch.randn(5), [0])


def test_gradient_flows_only_to_student():
    student = torch.randn(4, 5, requires_grad=True)
    teacher = torch.randn(4, 5, requires_grad=True)
    out = masked_distillation_loss(student, teacher, [1])
    out.loss.backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert not out.forget_term.requires_grad and not out.retain_term.requires_grad
    # d/ds KL(p || softmax(s)) = softmax(s) - p, averaged over the batch.
    p = masked_teacher_distribution(teacher.detach(), class_mask([1], 5))
    expected = (torch.softmax(student.detach(), dim=1) - p) / 4
    torch.testing.assert_close(student.grad, expected)


def test_loss_is_zero_when_student_matches_masked_teacher():
    teacher = torch.randn(3, 5)
    student = teacher.clone()
    student[:, 4] = -1e4  # the student already puts no mass on the forgotten class
    out = masked_distillation_loss(student, teacher, [4])
    assert out.loss.item() == pytest.approx(0.0, abs=1e-6)
    assert masked_distillation_loss(teacher.clone(), teacher, [4]).loss.item() > 0.01
