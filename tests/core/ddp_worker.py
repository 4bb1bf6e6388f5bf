"""Run under ``torchrun --nproc_per_node 2``: DDP training and SVD Gram summation on gloo.

Each rank saves its final weights and the forget-side Gram matrices to ``$OUT_DIR/rank{r}.pt``.
"""

import os
import sys

import torch
from torch import nn
from torch.utils.data import TensorDataset

import lethe
from lethe.engine import cross_entropy_step, sgd
from lethe.methods.svd import accumulate_grams


def data():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(64) % 4
    x = torch.randn(64, 2, 6, 6, generator=g) + y.view(-1, 1, 1, 1).float()
    return TensorDataset(x, y)


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 4))


def main(out_dir: str) -> None:
    torch.set_num_threads(1)
    engine = lethe.Engine(device="cpu", progress=False, seed=0)
    assert engine.distributed and engine.world_size == 2
    net = model()
    loader = engine.loader(data(), batch_size=8, shuffle=True)
    log = engine.fit(net, loader, cross_entropy_step, sgd(net, 0.05), 2)
    # Ranks vote differently (rank 0 from epoch 1, rank 1 from epoch 2): both stop after epoch 2.
    other = model()
    stopped = engine.fit(
        other, loader, cross_entropy_step, sgd(other, 0.05), 4, epoch_end=lambda epoch, row: epoch > engine.rank
    )
    # DELETE checks on its training batches (16 forget samples), each rank its own: counts are summed.
    forget = engine.loader(TensorDataset(*data()[data().tensors[1] == 1]), batch_size=8, shuffle=True)
    stop = {"epochs": 5, "lr": 0.05, "stop_when_forgotten": True, "min_epochs": 3, "stop_accuracy": 99.0}
    _, record = lethe.unlearn(net, "delete", forget=forget, forget_classes=[1], engine=engine, overrides=stop)
    grams = accumulate_grams(model().eval(), engine.loader(data(), batch_size=8, shuffle=False, shard=True), engine)
    torch.save(
        {
            "state": net.state_dict(),
            "log": log,
            "grams": grams.grams(),
            "samples": grams.samples,
            "stopped_epochs": len(stopped),
            "delete": record.extra["stop"],
            "delete_log": record.log,
        },
        os.path.join(out_dir, f"rank{engine.rank}.pt"),
    )


if __name__ == "__main__":
    main(sys.argv[1])
