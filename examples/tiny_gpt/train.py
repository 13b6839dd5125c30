# /// script
# [tool.runspec]
# schema = "1"
# name = "tiny_gpt/train"
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
"""Tiny character-level GPT in plain PyTorch (CPU; DDP over gloo under torchrun).

Run as ``python train.py --config PATH`` or ``torchrun --nproc_per_node=N train.py --config PATH``.
``data.path`` (a path, or a registry version: ``art://NAME:vN|ALIAS``) is a ``.txt`` file
(character vocab, 90/10 train/val split) or a directory
prepared by a data-prep recipe (``meta.json`` + raw little-endian uint16 token shards).

After training, rank 0 writes model.pt (state_dict), vocab.json and config.yaml to
``checkpoint.dir`` (if not null). Deterministic on CPU for a given seed and world size.

Metrics contract (runspec's file protocol, no runspec import): when ``$RUNSPEC_METRICS``
is set, each rank appends JSON lines to that file, one write per line.
  * every ``train.eval_every`` steps and at the last step:
    ``{"rank": R, "step": s, "train_loss": x}`` (mean training-batch loss since the previous
    line), plus ``"loss"`` (val loss) on rank 0 only; rank 0 also writes step 0's val loss;
  * at the end, one line per rank: ``{"rank": R, "tokens_per_s": t, "train_loss": x}``,
    plus ``"loss"`` (final val loss) on rank 0.
``tokens_per_s`` is this rank's training tokens over its training time (evaluation
excluded); runspec sums ``*_per_s`` across ranks and takes the rest from rank 0.

Artifacts through ``runspec.artifacts``: the data is opened with ``load`` (a path, or an
``art://`` version), and rank 0 ``save``s the checkpoint under the manifest's output that
points at ``checkpoint.dir``, with typed metadata (``step``, ``loss``); runspec registers it
when the run succeeds, with the data in its lineage. Run by hand, nothing is saved.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from ruamel.yaml import YAML
from torch.nn.parallel import DistributedDataParallel as DDP

from runspec import artifacts


def resolve(path: str, config_dir: Path) -> Path:
    """A relative data path is tried against the config's directory first, then the CWD."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    for base in (config_dir, Path.cwd()):
        if (base / p).exists():
            return base / p
    raise FileNotFoundError(f"data.path {path!r} not found under {config_dir} or {Path.cwd()}")


def load_data(path: Path) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Load a .txt file or a prepared directory into (vocab, train ids, val ids)."""
    if path.is_dir():
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))

        def read(split: str) -> torch.Tensor:
            parts = [np.fromfile(path / name, dtype="<u2") for name in meta["shards"][split]]
            ids = np.concatenate(parts).astype(np.int64)
            if len(ids) != meta["tokens"][split]:
                raise ValueError(
                    f"{split}: {len(ids)} tokens in shards, meta.json says {meta['tokens'][split]}"
                )
            return torch.from_numpy(ids)

        return list(meta["vocab"]), read("train"), read("val")
    text = path.read_text(encoding="utf-8")
    vocab = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(vocab)}
    ids = torch.tensor([stoi[ch] for ch in text], dtype=torch.long)
    n = int(0.9 * len(ids))
    return vocab, ids[:n], ids[n:]


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.ln1, self.ln2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        self.qkv, self.proj = nn.Linear(n_embd, 3 * n_embd), nn.Linear(n_embd, n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd),
            nn.GELU(),
            nn.Linear(4 * n_embd, n_embd),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        att = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        x = x + self.proj(att.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(
        self, vocab: int, n_layer: int, n_head: int, n_embd: int, block: int, dropout: float
    ) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, n_embd), nn.Embedding(block, n_embd)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*(Block(n_embd, n_head, dropout) for _ in range(n_layer)))
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab, bias=False)
        self.head.weight = self.tok.weight  # weight tying: fewer parameters, learns faster
        # GPT-2 init: with PyTorch's N(0, 1) embeddings (tied to the head) the loss starts near 30.
        for mod in self.modules():
            if isinstance(mod, (nn.Linear, nn.Embedding)):
                nn.init.normal_(mod.weight, std=0.02)
            if isinstance(mod, nn.Linear) and mod.bias is not None:
                nn.init.zeros_(mod.bias)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.tok(idx) + self.pos(torch.arange(idx.shape[1])))
        logits = self.head(self.ln_f(self.blocks(x)))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


def get_batch(
    data: torch.Tensor, block: int, batch: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    ix = torch.randint(len(data) - block, (batch,), generator=gen)
    chunks = data.unfold(0, block + 1, 1)[ix]  # (batch, block + 1) windows, copied
    return chunks[:, :-1], chunks[:, 1:]


@torch.no_grad()
def evaluate(model: nn.Module, data: torch.Tensor, cfg: dict[str, Any], seed: int) -> float:
    # Same batches at every evaluation (fixed generator), so the curve shows the model, not the sample.
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    losses = [
        model(*get_batch(data, cfg["model"]["block_size"], cfg["train"]["batch_size"], gen)).item()
        for _ in range(cfg["train"]["eval_batches"])
    ]
    model.train()
    return sum(losses) / len(losses)


def emit(record: dict[str, Any]) -> None:
    """Append one JSON line to $RUNSPEC_METRICS (one write per line; ranks share the file)."""
    target = os.environ.get("RUNSPEC_METRICS")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


def save_checkpoint(out: Path, model: nn.Module, vocab: list[str], cfg: dict[str, Any]) -> None:
    """model.pt (state_dict), vocab.json, config.yaml. A relative dir is relative to the CWD."""
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "model.pt")
    (out / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    with open(out / "config.yaml", "w", encoding="utf-8") as handle:
        yaml.dump(cfg, handle)


def main() -> None:
    parser = argparse.ArgumentParser(description="Tiny character-level GPT.")
    parser.add_argument("--config", required=True, help="config.yaml to read")
    config_path = Path(parser.parse_args().config).resolve()
    cfg: dict[str, Any] = YAML(typ="safe").load(config_path.read_text(encoding="utf-8"))
    m, o, t = cfg["model"], cfg["optim"], cfg["train"]

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("gloo")
    torch.set_num_threads(t.get("threads") or max(1, (os.cpu_count() or 1) // world))

    source = str(cfg["data"]["path"])  # a path, or a registry version: art://NAME:latest
    data = artifacts.load(source if source.startswith("art://") else
                          str(resolve(source, config_path.parent)))
    vocab, train_ids, val_ids = load_data(Path(data.path))
    torch.manual_seed(t["seed"])  # identical init on every rank (DDP also broadcasts rank 0's)
    model = GPT(len(vocab), m["n_layer"], m["n_head"], m["n_embd"], m["block_size"], m["dropout"])
    ddp: nn.Module = DDP(model) if world > 1 else model
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=o["lr"], weight_decay=o["weight_decay"])
    steps, warmup = t["steps"], max(1, t["steps"] // 10)

    def lr_at(s: int) -> float:  # linear warmup, cosine decay to lr/10: the most out of ~100 steps
        cosine = 0.1 + 0.45 * (1 + math.cos(math.pi * s / steps))
        return o["lr"] * min(1.0, (s + 1) / warmup) * cosine

    gen = torch.Generator().manual_seed(t["seed"] + rank)  # each rank samples different batches
    torch.manual_seed(t["seed"] + rank)  # dropout masks differ per rank too

    tokens_per_step = t["batch_size"] * m["block_size"]
    n_params = sum(p.numel() for p in params)
    size = (
        f"({len(vocab)} chars, {len(train_ids)} train tokens, {n_params} params, {world} rank(s))"
    )
    train_time, val_loss, train_loss = 0.0, float("nan"), float("nan")
    window: list[float] = []
    for step in range(steps + 1):
        if step % t["eval_every"] == 0 or step == steps:
            record: dict[str, Any] = {"rank": rank, "step": step}
            if window:  # nothing trained yet at step 0
                train_loss = record["train_loss"] = sum(window) / len(window)
                window = []
            if rank == 0:
                val_loss = record["loss"] = evaluate(model, val_ids, cfg, t["seed"])
                rate = step * tokens_per_step / max(train_time, 1e-9)
                info = f"train_loss {train_loss:.4f} tokens/s {rate:.0f}" if step else size
                print(f"step {step} loss {val_loss:.4f} {info}", flush=True)
            if len(record) > 2:  # other ranks have nothing to say at step 0
                emit(record)
            if world > 1:
                dist.barrier()  # keep rank 0's evaluation out of the other ranks' training time
        if step == steps:
            break
        started = time.perf_counter()
        loss = ddp(*get_batch(train_ids, m["block_size"], t["batch_size"], gen))
        for p in params:
            p.grad = None
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        opt.step()
        window.append(loss.item())
        train_time += time.perf_counter() - started

    tokens_per_s = steps * tokens_per_step / max(train_time, 1e-9)
    final: dict[str, Any] = {"rank": rank, "tokens_per_s": tokens_per_s, "train_loss": train_loss}
    if rank == 0:
        final["loss"] = val_loss
    emit(final)
    if rank == 0:
        if cfg["checkpoint"]["dir"]:
            out = Path(cfg["checkpoint"]["dir"]).expanduser()
            save_checkpoint(out, model, vocab, cfg)
            metadata = {"step": steps, "parameters": n_params, "vocab_size": len(vocab),
                        **({"loss": val_loss} if math.isfinite(val_loss) else {})}
            for name, path in artifacts.outputs().items():  # the output written here, if any
                if Path(path).resolve() == out.resolve():
                    artifacts.save(name, out, metadata=metadata)
        print(
            f"step {steps} loss {val_loss:.4f} tokens/s {tokens_per_s:.0f} "
            f"(rank 0; {world} rank(s)) train_loss {train_loss:.4f} train_time {train_time:.1f}s",
            flush=True,
        )
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
