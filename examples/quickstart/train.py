# /// script
# [tool.runspec]
# schema = "1"
# name = "quickstart/train"
#
# [tool.runspec.run]
# launch = "direct"
#
# [tool.runspec.config]
# dir = "./config"
# default = "tiny"
#
# [tool.runspec.resources]
# nodes = 1
# gpus_per_node = 0
# ///
"""Quickstart recipe: fits y = a·x + b by gradient descent in pure Python, reports metrics.

It reads the config runspec renders (--config), and reports metrics through runspec's
file protocol: JSON lines appended to $RUNSPEC_METRICS. It needs no runspec import.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

from ruamel.yaml import YAML


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="config.yaml to read")
    args = parser.parse_args()
    with open(args.config, encoding="utf-8") as handle:
        config = YAML(typ="safe").load(handle)
    train, optim = config["train"], config["optim"]
    rng = random.Random(train["seed"])
    points = [(x, 3.0 * x + 0.5 + rng.gauss(0, 0.1)) for x in (rng.random() for _ in range(256))]
    a = b = 0.0
    started = time.perf_counter()
    for _ in range(train["steps"]):
        grad_a = sum(2 * (a * x + b - y) * x for x, y in points) / len(points)
        grad_b = sum(2 * (a * x + b - y) for x, y in points) / len(points)
        a, b = a - optim["lr"] * grad_a, b - optim["lr"] * grad_b
    elapsed = time.perf_counter() - started
    loss = sum((a * x + b - y) ** 2 for x, y in points) / len(points)
    metrics = {"loss": loss, "steps_per_s": train["steps"] / elapsed}
    target = os.environ.get("RUNSPEC_METRICS")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(metrics) + "\n")
    print(f"a={a:.3f} b={b:.3f} loss={loss:.4f} steps/s={metrics['steps_per_s']:.0f}")


if __name__ == "__main__":
    main()
