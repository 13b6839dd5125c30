# /// script
# [tool.runspec]
# schema = "1"
# name = "ray_dataprep/prep"
#
# [tool.runspec.run]
# launch = "direct"
#
# [tool.runspec.config]
# dir = "./config"
# default = "default"
# ///
"""Ray data-prep recipe: character-level tokenization of a text file, sharded with Ray tasks.

The driver reads ``source`` (UTF-8), builds the vocabulary (the sorted set of its characters),
splits the text into train (the first ``1 - val_fraction``) and val (the rest), cuts train into
``shards`` contiguous chunks, and encodes every chunk, val included, in a Ray task. Run by hand it
starts a small local Ray; run as a Ray job (``RAY_ADDRESS`` set by the job supervisor) or with
``ray.address`` set it joins that cluster instead.

Output directory (``output``; built in a temporary sibling and renamed into place at the end, so a
failed prep never leaves a half dataset behind):

- ``meta.json``: ``{"vocab": ["\\n", " ", ...], "vocab_size": N, "tokens": {"train": n1, "val": n2},
  "shards": {"train": ["train-00000.bin", ...], "val": ["val-00000.bin"]},
  "source_sha256": "<sha256 of the source bytes>"}``
- ``train-NNNNN.bin`` / ``val-00000.bin``: raw little-endian uint16 token ids (``np.fromfile(p,
  "<u2")``); ids index into ``vocab``; train shards concatenated in order, then val, decode back
  to the exact source text.

Metrics go to ``$RUNSPEC_METRICS`` (one JSON line, runspec's file protocol; no runspec import):
``tokens`` (train + val), ``shards`` (train shards) and ``chars_per_s`` (source characters over
the wall time from dispatching the encode tasks until every shard is on disk).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ruamel.yaml import YAML


@ray.remote
def encode(chunk: str, codes: np.ndarray) -> np.ndarray:
    """Map each character of ``chunk`` to its index in the sorted code-point table ``codes``."""
    points = np.frombuffer(chunk.encode("utf-32-le"), dtype="<u4")
    return np.searchsorted(codes, points).astype("<u2")


def resolve_source(value: str, config_dir: Path) -> Path:
    """An absolute path as is; a relative one against the config's directory, then the CWD."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    for base in (config_dir, Path.cwd()):
        if (base / path).is_file():
            return base / path
    raise FileNotFoundError(f"source {value!r} not found under {config_dir} or {Path.cwd()}")


def start_ray(ray_cfg: dict[str, Any]) -> str:
    """Join the configured (or job-supervisor) cluster, else start a local one; say which."""
    address = ray_cfg.get("address") or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    if address is None:
        # "local", not None: with None Ray would try the cluster named in
        # /tmp/ray/ray_current_cluster, which may be long dead (it then retries forever).
        address = "local"
        kwargs["num_cpus"] = ray_cfg.get("num_cpus")
    elif ray_cfg.get("num_cpus") is not None:
        print(f"prep: ray.num_cpus ignored when joining an existing cluster ({address})")
    context = ray.init(address=address, **kwargs)
    how = "started local Ray" if address == "local" else "joined Ray cluster"
    return f"{how} at {context.address_info.get('gcs_address')}"


def prepare(cfg: dict[str, Any], config_dir: Path) -> None:
    source = resolve_source(str(cfg["source"]), config_dir)
    output = Path(str(cfg.get("output") or "dataset")).expanduser().resolve()
    shards, val_fraction = int(cfg.get("shards", 4)), float(cfg.get("val_fraction", 0.1))
    if shards < 1 or not 0.0 <= val_fraction < 1.0:
        raise ValueError(
            f"need shards >= 1 and 0 <= val_fraction < 1, got {shards}, {val_fraction}"
        )

    raw = source.read_bytes()
    text = raw.decode("utf-8")
    vocab = sorted(set(text))
    if not text or len(vocab) > 1 << 16:
        raise ValueError(f"{source}: {len(text)} chars, {len(vocab)} distinct (need 1..65536)")
    n_train = int(len(text) * (1.0 - val_fraction))
    bounds = [n_train * i // shards for i in range(shards + 1)]
    chunks = [text[lo:hi] for lo, hi in pairwise(bounds)] + [text[n_train:]]
    names = [f"train-{i:05d}.bin" for i in range(shards)] + ["val-00000.bin"]

    where = start_ray(cfg.get("ray") or {})
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        started = time.perf_counter()
        codes = ray.put(np.array([ord(ch) for ch in vocab], dtype=np.uint32))
        pending = [encode.remote(chunk, codes) for chunk in chunks]
        for name, ref in zip(names, pending, strict=True):
            ray.get(ref).astype("<u2").tofile(staging / name)
        elapsed = time.perf_counter() - started
        meta = {
            "vocab": vocab,
            "vocab_size": len(vocab),
            "tokens": {"train": n_train, "val": len(text) - n_train},
            "shards": {"train": names[:-1], "val": names[-1:]},
            "source_sha256": hashlib.sha256(raw).hexdigest(),
        }
        (staging / "meta.json").write_text(
            json.dumps(meta, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        staging.chmod(0o755)
        if output.exists():  # a re-run by hand: swap the old dataset out, then drop it
            old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
            output.rename(old / output.name)
            staging.rename(output)
            shutil.rmtree(old)
        else:
            staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    metrics = {"tokens": len(text), "shards": shards, "chars_per_s": len(text) / max(elapsed, 1e-9)}
    target = os.environ.get("RUNSPEC_METRICS")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(metrics) + "\n")
    print(
        f"prep: {source.name}: {len(text)} chars, vocab {len(vocab)}, train {n_train} in {shards} shards, "
        f"val {len(text) - n_train} -> {output} ({elapsed:.2f} s, {metrics['chars_per_s']:.0f} chars/s; {where})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--config", required=True, help="config.yaml to read")
    args = parser.parse_args()
    config_path = Path(args.config).resolve()
    with open(config_path, encoding="utf-8") as handle:
        cfg = YAML(typ="safe").load(handle) or {}
    try:
        prepare(cfg, config_path.parent)
    finally:
        ray.shutdown()  # a no-op when Ray was never started


if __name__ == "__main__":
    main()
