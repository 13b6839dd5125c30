"""Run identity: a readable logical key and a digest of the exact request.

The key names a run (``manifest/stage/param=value,…/c1``) and survives edits that do not
change which runs exist; the digest changes exactly when what would be submitted changes.
Parameter order in the key is alphabetical, so reordering a sweep changes no identity.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+@-]")
MAX_SEGMENT = 120
SINGLE_POINT = "default"   # the point of a run without sweep parameters
FORMER_SINGLE_POINT = "_"  # what runspec 0.1 called it (see former_key)
_FAN_OUT_DEFAULT = re.compile(rf"((?:^|,)stage\.[^=,]+)={SINGLE_POINT}@")


def format_value(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    text = str(value)
    # A newline or other control character would split the key over lines (in plans, in
    # script comments); escape it the way JSON does.
    return text if text.isprintable() else json.dumps(text)[1:-1]


def point_label(point: dict[str, Any]) -> str:
    """``model.n_layer=2,optim.lr=0.001``; ``default`` for a run without sweep parameters
    (a real point always has an ``=``, so the two never collide)."""
    if not point:
        return SINGLE_POINT
    return ",".join(f"{k}={format_value(point[k])}" for k in sorted(point))


def run_key(manifest: str, stage: str, point: dict[str, Any], slot_label: str) -> str:
    return f"{manifest}/{stage}/{point_label(point)}/{slot_label}"


def former_key(key: str) -> str | None:
    """The key runspec 0.1 gave a run whose point, or the upstream run it fans out over,
    had no sweep parameters (``m/train/_/c1`` for ``m/train/default/c1``,
    ``m/use/stage.prep=_@c1/c1`` for ``…=default@c1/c1``), so a state written then is
    renamed, not rerun; None for a key that had no other name."""
    parts = key.split("/", 2)
    if len(parts) < 3:
        return None
    label, _, slot = parts[2].rpartition("/")
    former = (FORMER_SINGLE_POINT if label == SINGLE_POINT else
              _FAN_OUT_DEFAULT.sub(rf"\1={FORMER_SINGLE_POINT}@", label))
    return None if former == label or not slot else f"{parts[0]}/{parts[1]}/{former}/{slot}"


def slug(segment: str) -> str:
    """A file-system-safe form of one key segment; altered or long ones get a short hash."""
    cleaned = _UNSAFE.sub("_", segment)
    if cleaned == segment and len(segment) <= MAX_SEGMENT and segment not in (".", ".."):
        return segment
    tail = hashlib.sha256(segment.encode()).hexdigest()[:8]
    return f"{cleaned[: MAX_SEGMENT - 9]}~{tail}"


def key_path(key: str) -> str:
    """The run directory (relative to the outputs root) for a run key."""
    return "/".join(slug(part) for part in key.split("/"))


def canonical(data: Any) -> str:
    """The one JSON text of ``data``: sorted keys, no whitespace, floats by repr."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(data: Any) -> str:
    return hashlib.sha256(canonical(data).encode()).hexdigest()
