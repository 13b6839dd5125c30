# /// script
# [tool.runspec]
# schema = "1"
# name = "nemotron_style/train"
#
# [tool.runspec.run]
# launch = "torchrun"
#
# [tool.runspec.config]
# dir = "./config"
# default = "default"
#
# [tool.runspec.resources]
# nodes = 1
# gpus_per_node = 0
# ///
"""A recipe in Nemotron's layout: ``train.py`` + ``config/{default,tiny}.yaml``.

It is written the way Nemotron recipes are: ``--config PATH`` is an OmegaConf YAML, any
further ``key=value`` arguments are an OmegaConf dotlist merged on top, and it knows
nothing about the tool that launches it. The one optional courtesy to runspec: when
``$RUNSPEC_METRICS`` is set, the final loss is appended there as a JSON line (runspec's
metrics protocol), so ``runspec results`` can tabulate it.

The task is small on purpose: a two-layer MLP learns sin(x) on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    args, unknown = parser.parse_known_args()

    cfg = OmegaConf.load(args.config)
    if unknown:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(unknown))

    torch.manual_seed(cfg.train.seed)
    torch.set_num_threads(1)
    x = torch.linspace(-3.14, 3.14, cfg.data.points).unsqueeze(1)
    y = torch.sin(x)
    model = torch.nn.Sequential(torch.nn.Linear(1, cfg.model.hidden), torch.nn.Tanh(),
                                torch.nn.Linear(cfg.model.hidden, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    started = time.perf_counter()
    for step in range(1, cfg.train.train_iters + 1):
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % cfg.train.log_interval == 0 or step == cfg.train.train_iters:
            print(f"iter {step}/{cfg.train.train_iters} loss {loss.item():.5f}", flush=True)
    seconds = time.perf_counter() - started

    metrics_file = os.environ.get("RUNSPEC_METRICS")
    if metrics_file:
        with open(metrics_file, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"loss": loss.item(),
                                     "iters_per_s": cfg.train.train_iters / seconds}) + "\n")


if __name__ == "__main__":
    main()
