"""lethe_face.report: the issue's target lines."""

from lethe_face.report import criteria_lines, mean_table


def _row(head: str, method: str, forget: float, retain: float, seed: int = 0) -> dict:
    return {"head": head, "method": method, "forget_test": forget, "retain_test": retain, "seed": seed}


def test_targets_need_forgetting_with_kept_identities_within_two_points():
    rows = [
        _row("linear", "original", 50.0, 81.3),
        _row("linear", "delete", 0.0, 80.5),
        _row("linear", "svd", 10.0, 77.2),
        _row("linear", "retrain", 0.0, 82.3),
    ]
    lines = criteria_lines(rows)
    assert len(lines) == 2
    assert lines[0].startswith("- linear head, delete: forget_test 0.00 %") and lines[0].endswith(": met")
    assert lines[1].startswith("- linear head, svd: forget_test 10.00 %") and lines[1].endswith("NOT met")


def test_a_head_that_never_recognised_the_person_shows_nothing():
    rows = [
        _row("cosine", "original", 0.0, 17.6),
        _row("cosine", "delete", 0.0, 17.6),
        _row("linear", "original", 60.0, 80.0),
        _row("linear", "delete", 0.0, 77.0),
    ]
    lines = criteria_lines(rows)
    assert lines[0] == (
        "- cosine head: NOT shown, the original already identifies the forgotten identities on "
        "0.00 % of their test images (retain_test 17.60 %): nothing to forget"
    )
    assert lines[1].endswith("(target >= -2): NOT met") and len(lines) == 2


def test_several_seeds_are_judged_on_their_means_and_listed():
    rows = [
        _row("linear", "original", 100.0, 90.0),
        _row("linear", "delete", 0.0, 87.0),
        _row("linear", "original", 100.0, 92.0, 1),
        _row("linear", "delete", 10.0, 91.0, 1),
    ]
    [line] = criteria_lines(rows)
    assert line.startswith("- linear head, delete: forget_test 5.00 % (target <= 5), retain_test -2.00 points")
    assert ": met (means over 2 originals; seed 0: 0.00 % / -3.00; seed 1: 10.00 % / -1.00)" in line
    rows[3]["retain_test"] = 90.0
    assert "NOT met (means over 2" in criteria_lines(rows)[0]


def test_mean_table_shows_mean_and_spread_per_method():
    rows = [_row("linear", "original", 100.0, 90.0), _row("linear", "original", 100.0, 92.0, 1)]
    table = mean_table(rows, ("forget_test", "retain_test"))
    assert "| original | 100.00 ± 0.00 | 91.00 ± 1.00 |" in table
