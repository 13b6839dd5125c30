"""``runspec init``: a runnable starter project (manifest, recipe, config, .gitignore); the
manifest's first line points editors at the schema."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from runspec.manifest import schema as schemas

STARTER_SCRIPT = """\
\"\"\"A starter recipe: fits a line by gradient descent in pure Python, reports two metrics.

runspec renders config.yaml (with the manifest's overrides and sweep values) into the run
directory and passes it as --config. Metrics go to $RUNSPEC_METRICS as JSON lines: the
protocol needs no runspec import, so this script also runs on its own:
    python train.py --config config.yaml
\"\"\"

import argparse
import json
import os
import random
import time

from ruamel.yaml import YAML  # installed with runspec; any YAML reader will do


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="the config.yaml to read")
    args = parser.parse_args()
    with open(args.config, encoding="utf-8") as handle:
        config = YAML(typ="safe").load(handle)
    data, train = config["data"], config["train"]
    rng = random.Random(train["seed"])
    points = [(x, 3.0 * x + 0.5 + rng.gauss(0, data["noise"]))
              for x in (rng.random() for _ in range(data["points"]))]
    a = b = 0.0
    started = time.perf_counter()
    for _ in range(train["steps"]):
        grad_a = sum(2 * (a * x + b - y) * x for x, y in points) / len(points)
        grad_b = sum(2 * (a * x + b - y) for x, y in points) / len(points)
        a, b = a - train["lr"] * grad_a, b - train["lr"] * grad_b
    elapsed = time.perf_counter() - started
    loss = sum((a * x + b - y) ** 2 for x, y in points) / len(points)
    metrics = {"loss": loss, "steps_per_s": train["steps"] / elapsed}
    target = os.environ.get("RUNSPEC_METRICS")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(metrics) + "\\n")
    print(f"a={a:.3f} b={b:.3f} loss={loss:.5f} steps/s={metrics['steps_per_s']:.0f}")


if __name__ == "__main__":
    main()
"""

STARTER_CONFIG = """\
# The recipe's config. runspec renders it per run, with the manifest's overrides and the
# sweep's values applied, and passes the rendered copy to train.py as --config.
data:
  points: 1000
  noise: 0.1
train:
  steps: 20000      # with 1,000 points: about 2–3 s of work on one core
  lr: 0.01
  seed: 0
"""

STARTER_GITIGNORE = """\
# runspec: run directories and the state of what was applied
runs/
.runspec/
"""

TOML_BODY = """\
schema = "runspec/v1"
name = "{name}"
description = "A starter: fit a line with two learning rates, three cycles each."

[recipe]
script = "train.py"
config = "config.yaml"
[recipe.overrides]
"train.seed" = "${{run.cycle}}"     # a seed per cycle: the CIs cover seed variance

[resources]
nodes = 1
procs_per_node = 1

[env]
profile = "local"                  # the embedded local default; add an env.toml for more

[sweep]
mode = "grid"
[sweep.parameters]
"train.lr" = [0.001, 0.01]

[campaign]
cycles = 3                         # n = 3 per point: enough for a 95% CI
order = "interleaved"              # c1 of every point, then c2, ...

[measure]
metrics = ["loss", "steps_per_s"]
primary = "loss"
goal = "min"
"""

YAML_BODY = """\
schema: runspec/v1
name: {name}
description: "A starter: fit a line with two learning rates, three cycles each."
recipe:
  script: train.py
  config: config.yaml
  overrides:
    train.seed: ${{run.cycle}}     # a seed per cycle: the CIs cover seed variance
resources:
  nodes: 1
  procs_per_node: 1
env:
  profile: local                   # the embedded local default; add an env.toml for more
sweep:
  mode: grid
  parameters:
    train.lr: [0.001, 0.01]
campaign:
  cycles: 3                        # n = 3 per point: enough for a 95% CI
  order: interleaved               # c1 of every point, then c2, ...
measure:
  metrics: [loss, steps_per_s]
  primary: loss
  goal: min
"""


@dataclass
class InitResult:
    written: list[Path]
    skipped: list[Path]


def schema_reference(target_dir: Path) -> tuple[str, list[Path]]:
    """How the manifest refers to the schema, and any schema files that must be written.

    Inside this repository the checked-in ``schemas/`` is referenced relatively; elsewhere
    the schemas are copied next to the manifest (``schemas/``) so editors work offline.
    """
    source = schemas.schema_dir().resolve()
    target_dir = target_dir.resolve()
    if source.is_dir() and os.path.commonpath([source.parent, target_dir]) == str(source.parent):
        return os.path.relpath(source, target_dir), []
    return "schemas", schemas.write(target_dir / "schemas")


def init(target_dir: Path, fmt: str = "toml", name: str | None = None, force: bool = False
         ) -> InitResult:
    """Write ``run.toml`` (or ``run.yaml``), ``train.py``, ``config.yaml`` and a
    ``.gitignore`` into ``target_dir``; existing files are kept (the manifest is replaced
    with ``force``)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    name = name or _slug(target_dir.resolve().name)
    manifest = target_dir / ("run.toml" if fmt == "toml" else "run.yaml")
    written: list[Path] = []
    skipped: list[Path] = []
    if manifest.exists() and not force:
        skipped.append(manifest)
    else:
        reference, copied = schema_reference(target_dir)
        written += copied
        if fmt == "toml":
            header = f"#:schema {reference}/{schemas.SCHEMA_FILES['run']}\n"
            body = TOML_BODY.format(name=name)
        else:
            header = f"# yaml-language-server: $schema={reference}/{schemas.SCHEMA_FILES['run']}\n"
            body = YAML_BODY.format(name=name)
        manifest.write_text(header + body, encoding="utf-8")
        written.append(manifest)
    for file_name, text in (("train.py", STARTER_SCRIPT), ("config.yaml", STARTER_CONFIG),
                            (".gitignore", STARTER_GITIGNORE)):
        path = target_dir / file_name
        if path.exists():
            skipped.append(path)
        else:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return InitResult(written, skipped)


def _slug(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in text).strip("-._")
    return cleaned or "my-run"
