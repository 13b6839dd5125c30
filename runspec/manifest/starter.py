"""``runspec init``: a starter manifest (and recipe) whose first line points editors at the schema."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from runspec.manifest import schema as schemas

STARTER_SCRIPT = '''\
"""A starter recipe: reads its config, does a little work, reports a metric."""

import argparse
import json
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=False)
    args, _ = parser.parse_known_args()
    started = time.perf_counter()
    total = sum(i * i for i in range(200_000))
    metrics = {"elapsed_s": time.perf_counter() - started, "checksum": total % 1000}
    # runspec's metrics protocol: JSON lines appended to $RUNSPEC_METRICS (no import needed).
    target = os.environ.get("RUNSPEC_METRICS")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(metrics) + "\\n")
    print(f"config={args.config} metrics={metrics}")


if __name__ == "__main__":
    main()
'''

TOML_BODY = '''\
schema = "runspec/v1"
name = "{name}"
description = "A starter manifest: edit the recipe, then `runspec validate`."

[recipe]
script = "train.py"
launch = "direct"

[resources]
nodes = 1
procs_per_node = 1

[env]
profile = "local"

[sweep]
mode = "grid"
[sweep.parameters]
"train.seed" = [1, 2]

[campaign]
cycles = 1

[measure]
metrics = ["elapsed_s"]
primary = "elapsed_s"
'''

YAML_BODY = '''\
schema: runspec/v1
name: {name}
description: "A starter manifest: edit the recipe, then `runspec validate`."
recipe:
  script: train.py
  launch: direct
resources:
  nodes: 1
  procs_per_node: 1
env:
  profile: local
sweep:
  mode: grid
  parameters:
    train.seed: [1, 2]
campaign:
  cycles: 1
measure:
  metrics: [elapsed_s]
  primary: elapsed_s
'''


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
    """Write ``run.toml`` (or ``run.yaml``) and a starter ``train.py`` into ``target_dir``."""
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
    script = target_dir / "train.py"
    if script.exists():
        skipped.append(script)
    else:
        script.write_text(STARTER_SCRIPT, encoding="utf-8")
        written.append(script)
    return InitResult(written, skipped)


def _slug(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in text).strip("-._")
    return cleaned or "my-run"
