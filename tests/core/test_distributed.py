"""The engine under torchrun: 2 CPU processes with the gloo backend."""

import subprocess
import sys
from pathlib import Path

import torch
from cli_testing import free_port
from torch.utils.data import DataLoader

from lethe.engine import Engine
from lethe.methods.svd import accumulate_grams

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_two_process_ddp_and_gram_all_reduce(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
        str(WORKER),
        str(tmp_path),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    # a failed worker's own reason comes first in stderr, torchrun's summary last: show both
    assert done.returncode == 0, done.stderr[:4000] + "\n[...]\n" + done.stderr[-1500:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    # DDP keeps the replicas identical, and the epoch means are all-reduced
    for key, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][key]), key
    assert ranks[0]["log"] == ranks[1]["log"]
    assert ranks[0]["log"][-1]["loss"] < ranks[0]["log"][0]["loss"]
    # Engine.fit stops on every rank together; DELETE's check is reduced across them
    assert ranks[0]["stopped_epochs"] == ranks[1]["stopped_epochs"] == 2
    assert ranks[0]["delete"] == ranks[1]["delete"]
    assert ranks[0]["delete"]["epochs_run"] == 3 and ranks[0]["delete"]["stopped_early"]
    checks = [[row["forget_check"] for row in rank["delete_log"]] for rank in ranks]
    assert checks[0] == checks[1]
    # Gram matrices summed across the two shards equal the single-process Gram over all data
    from ddp_worker import data, model  # tests/core is on the path: pytest put it there for this file

    single = accumulate_grams(model().eval(), DataLoader(data(), batch_size=8), Engine(device="cpu", progress=False))
    for name, gram in single.grams().items():
        assert torch.allclose(ranks[0]["grams"][name], gram, rtol=1e-10, atol=1e-8), name
        assert torch.equal(ranks[0]["grams"][name], ranks[1]["grams"][name])
    assert ranks[0]["samples"] == ranks[1]["samples"] == len(data())  # counts summed across processes
