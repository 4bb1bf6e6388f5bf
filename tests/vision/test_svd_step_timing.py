"""``lethe_vision.speed``: the pieces of the SVD step measurement every task's speed benchmark shares
(end to end in tests/classification/test_speed_bench.py and tests/segmentation/test_seg_speed.py)."""

import mmap

from lethe_vision import speed


def test_rss_probe_sees_a_large_allocation():
    probe = speed.RssProbe()
    probe.start()
    # a fresh anonymous mapping, written: new resident pages whatever the allocator holds already
    # (torch.ones may reuse freed pages that earlier tests left resident)
    block = mmap.mmap(-1, 64 * 2**20)
    block.write(b"\1" * len(block))
    assert probe.peak() >= 48 * 2**20
    block.close()


def test_within_spread_counts_quality_inside_the_reference_seeds():
    svd = [
        {
            "method": "ours-fast",
            "samples": 9,
            "speedup_vs_reference": 5.0,
            "forget_test": 14.77,
            "retain_test": 67.6,
            "peak_bytes": 1,
        },
        {
            "method": "reference",
            "samples": 9,
            "speedup_vs_reference": 1.0,
            "forget_test": 14.70,
            "retain_test": 67.5,
            "forget_test_std": 0.10,
            "retain_test_std": 0.1,
            "peak_bytes": 1,
        },
    ]
    [row] = speed.svd_targets(svd)
    assert row["met"] is False and row["met_within_spread"] is True
    svd[0]["forget_test"] = 14.81  # beyond one standard deviation
    assert speed.svd_targets(svd)[0]["met_within_spread"] is False
