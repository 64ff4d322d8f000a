"""Train: seconds per epoch of the reference model (hidden 1024, 3 layers), on the CPU and on
CUDA when present."""

from __future__ import annotations

import argparse
import time

from bench.harness import synchronize


def train_epoch_seconds(args: argparse.Namespace, device: str) -> float:
    import torch

    from vidmem.learn.model import MemorabilityLSTM

    torch.manual_seed(0)
    model = MemorabilityLSTM(1280, args.train_hidden, 3).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(args.train_samples, 8, 1280, device=device)
    y = torch.rand(args.train_samples, device=device)

    def epoch() -> None:
        for batch in range(0, args.train_samples, 1000):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x[batch:batch + 1000]),
                                                y[batch:batch + 1000])
            loss.backward()
            optimizer.step()
        synchronize()

    if device != "cpu":
        epoch()  # warm-up: CUDA context and kernel selection are not part of an epoch
    start = time.perf_counter()
    epoch()
    return time.perf_counter() - start


def bench_train(args: argparse.Namespace) -> dict:
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    result: dict = {"samples": args.train_samples, "hidden": args.train_hidden}
    for device in devices:
        seconds = train_epoch_seconds(args, device)
        result[device] = {"seconds_per_epoch": round(seconds, 3),
                          "seconds_per_epoch_6000": round(seconds * 6000 / args.train_samples, 2)}
    return result
