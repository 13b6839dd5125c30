"""JSON Schemas generated from the models: written to ``schemas/``, read back to validate.

The checked-in files are what editors and ``runspec validate`` use, so validation never
has to build the pydantic models (that keeps the cold start fast). ``runspec schema --check``
and a test keep them equal to what the models generate.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_FILES = {
    "run": "run.schema.json",
    "env": "env.schema.json",
    "result": "result.schema.json",
}
SCHEMA_BASE_URL = "https://runspec.dev/schemas/"


def schema_dir() -> Path:
    """Where the schemas live: ``schemas/`` in a checkout, ``runspec/schemas`` in a wheel."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "schemas", package / "schemas"):
        if (candidate / SCHEMA_FILES["run"]).is_file():
            return candidate
    return package.parent / "schemas"


def generate(kind: str) -> dict[str, Any]:
    """The JSON Schema for ``run`` (a manifest), ``env`` (env.toml) or ``result`` (result.json)."""
    from pydantic import BaseModel
    from pydantic.json_schema import GenerateJsonSchema

    from runspec.manifest.executors import EnvFile
    from runspec.manifest.models import Manifest
    from runspec.measure.result_schema import Result

    class _Generator(GenerateJsonSchema):
        # Optional fields are omitted, never null: TOML has no null, and a YAML ``~`` is
        # almost always a mistake, so the schema offers only the real type.
        def nullable_schema(self, schema):
            return self.generate_inner(schema["schema"])

    models: dict[str, type[BaseModel]] = {"run": Manifest, "env": EnvFile, "result": Result}
    model = models[kind]
    if kind == "result":  # written by a program, where null means "measured nothing"
        body = model.model_json_schema()
    else:
        body = model.model_json_schema(schema_generator=_Generator)
        _drop_null_defaults(body)
    header = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_BASE_URL + SCHEMA_FILES[kind],
    }
    return header | body


def _drop_null_defaults(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("default", ...) is None:
            del node["default"]
        for value in node.values():
            _drop_null_defaults(value)
    elif isinstance(node, list):
        for value in node:
            _drop_null_defaults(value)


def render(kind: str) -> str:
    """The exact text of a checked-in schema file."""
    return json.dumps(generate(kind), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


@cache
def load(kind: str) -> dict[str, Any]:
    """The schema used for validation: the checked-in file, or freshly generated without one."""
    path = schema_dir() / SCHEMA_FILES[kind]
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return generate(kind)


def write(out_dir: Path) -> list[Path]:
    """Write every schema into ``out_dir``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, filename in SCHEMA_FILES.items():
        path = out_dir / filename
        path.write_text(render(kind), encoding="utf-8")
        written.append(path)
    return written


def stale(out_dir: Path) -> list[Path]:
    """Schema files in ``out_dir`` that are missing or differ from the generated ones."""
    result = []
    for kind, filename in SCHEMA_FILES.items():
        path = out_dir / filename
        if not path.is_file() or path.read_text(encoding="utf-8") != render(kind):
            result.append(path)
    return result
