"""Artifact types: the metadata fields a version of a known type must carry.

A consumer's ``${art:data,pack_size}`` is only as good as the producer's promise that
``pack_size`` is there and is a number. Naming a type here (``[outputs.artifacts.X]
type``, or ``type`` in ``runspec.artifacts.save``) makes registration check that promise:
a missing or mistyped field fails the run, naming the field. Any other type string is
free-form: its metadata is registered as given. Extra fields are always allowed.

Standard library only: ``runspec.artifacts.save`` checks a recipe's metadata with it as
soon as it is called, inside the training process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

RESERVED = frozenset({
    "name", "version", "type", "mode", "path", "source", "object", "digest", "size", "files",
    "created", "producer", "inputs", "metrics", "wandb", "host", "fields"})
"""runspec's own fields of a version: a recipe's metadata cannot set them (``${art:X,path}``
must always be where the version's data is)."""


class Kind(StrEnum):
    INTEGER = "integer"
    NUMBER = "number"
    TEXT = "text"


@dataclass(frozen=True)
class FieldSpec:
    kind: Kind
    required: bool = False
    minimum: float | None = None
    description: str = ""

    def problem(self, value: Any) -> str | None:
        """Why ``value`` does not fit, or None."""
        if self.kind == Kind.TEXT:
            return None if isinstance(value, str) else f"expected text, got {_shown(value)}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected {'an integer' if self.kind == Kind.INTEGER else 'a number'}, " \
                   f"got {_shown(value)}"
        if self.kind == Kind.INTEGER and not isinstance(value, int):
            return f"expected an integer, got {value!r}"
        if not math.isfinite(value):
            return f"expected a finite number, got {value!r}"
        if self.minimum is not None and value < self.minimum:
            return f"expected at least {self.minimum:g}, got {value!r}"
        return None


@dataclass(frozen=True)
class ArtifactType:
    name: str
    description: str
    fields: dict[str, FieldSpec] = field(default_factory=dict)


def _count(description: str, required: bool = False, minimum: float = 0) -> FieldSpec:
    return FieldSpec(Kind.INTEGER, required, minimum, description)


def _number(description: str, required: bool = False, minimum: float | None = None
            ) -> FieldSpec:
    return FieldSpec(Kind.NUMBER, required, minimum, description)


def _text(description: str) -> FieldSpec:
    return FieldSpec(Kind.TEXT, False, None, description)


TYPES: dict[str, ArtifactType] = {t.name: t for t in (
    ArtifactType("dataset", "data of any form", {
        "total_tokens": _count("tokens in the data"),
        "total_sequences": _count("documents or sequences in the data")}),
    ArtifactType("model", "trained weights", {
        "step": _count("the training step they are from"),
        "loss": _number("the loss at that step")}),
    ArtifactType("checkpoint", "a training state to resume or fine-tune from", {
        "step": _count("the training step it was saved at", required=True),
        "loss": _number("the loss at that step")}),
    ArtifactType("pretrain-blends", "tokenized pretraining data blends (bin/idx + blend.json)", {
        "total_tokens": _count("tokens processed", required=True),
        "total_sequences": _count("documents processed", required=True),
        "elapsed_sec": _number("processing time in seconds", minimum=0),
        "train_tokens": _count("tokens in the train split"),
        "valid_tokens": _count("tokens in the validation split"),
        "test_tokens": _count("tokens in the test split"),
        "blend_path": _text("the blend.json file")}),
    ArtifactType("sft-packed", "tokenized, packed SFT sequences", {
        "total_tokens": _count("tokens processed", required=True),
        "total_sequences": _count("sequences after packing", required=True),
        "pack_size": _count("most tokens per packed sequence", required=True, minimum=1),
        "elapsed_sec": _number("processing time in seconds", minimum=0),
        "num_shards": _count("output shards"),
        "blend_path": _text("the blend.json file")}),
    ArtifactType("split-jsonl", "untokenized JSONL splits (RL prompts, evaluation sets)", {
        "total_sequences": _count("documents processed", required=True),
        "elapsed_sec": _number("processing time in seconds", minimum=0),
        "train": _text("the train split's file"),
        "val": _text("the validation split's file"),
        "test": _text("the test split's file")}),
)}


def metadata_problems(type_name: str, metadata: dict[str, Any]) -> list[str]:
    """What is wrong with ``metadata`` for ``type_name``, each naming the field (empty:
    it fits; an unknown type is free-form, so only runspec's own field names are refused)."""
    found = [f'metadata field "{name}" is runspec\'s own (reserved: '
             f'{", ".join(sorted(RESERVED))}): rename it' for name in sorted(metadata)
             if name in RESERVED]
    known = TYPES.get(type_name)
    if known is None:
        return found
    for name, spec in known.fields.items():
        if name not in metadata:
            if spec.required:
                found.append(f'type "{type_name}" needs metadata field "{name}" '
                             f"({spec.description}: {_kind(spec)})")
            continue
        problem = spec.problem(metadata[name])
        if problem:
            found.append(f'metadata field "{name}" of type "{type_name}": {problem}')
    return found


def _kind(spec: FieldSpec) -> str:
    what = {Kind.INTEGER: "integer", Kind.NUMBER: "number", Kind.TEXT: "text"}[spec.kind]
    return what if spec.minimum is None else f"{what} ≥ {spec.minimum:g}"


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:39] + '…'}"


def describe() -> str:
    """The types and their fields, as docs/artifacts.md lists them (required ones bold)."""
    lines = ["| type | what it is | fields (**required**) |", "|---|---|---|"]
    for known in TYPES.values():
        fields = ", ".join(
            (f"**`{name}`**" if spec.required else f"`{name}`") + f" ({_kind(spec)})"
            for name, spec in known.fields.items())
        lines.append(f"| `{known.name}` | {known.description} | {fields} |")
    return "\n".join(lines) + "\n"
