"""Plan-time interpolation: ``${sweep.p}``, ``${run.key}``, ``${run.dir}``, ``${stage.…}``, ``${art:…}``.

Everything else in ``${…}`` — OmegaConf resolvers such as ``${oc.env:VAR}`` and references
to other config keys — passes through untouched for the job to resolve at run time.
A value that is exactly one interpolation keeps its type (``${sweep.lr}`` stays a float).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from runspec.manifest.suggest import did_you_mean

_REFERENCE = re.compile(r"\$\{([^${}]+)\}")
PLAN_NAMESPACES = ("sweep", "run", "stage")


class Unresolved(str):
    """A reference left as written for the job to resolve (a value runspec cannot know)."""


class InterpolationError(ValueError):
    """An interpolation that cannot be resolved at plan time; carries a hint."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


def has_reference(value: Any) -> bool:
    """Does ``value`` (or anything inside it) contain ``${``?"""
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(has_reference(v) for v in value.values())
    if isinstance(value, list):
        return any(has_reference(v) for v in value)
    return False


def is_plan_time(expression: str) -> bool:
    head = expression.strip()
    if head.startswith("art:"):
        return True
    return head.split(".", 1)[0] in PLAN_NAMESPACES and ":" not in head


class Interpolator:
    """Resolves plan-time references against one run's context."""

    def __init__(self, sweep: Mapping[str, Any], run: Mapping[str, Any],
                 stage: Callable[[str], Any] | None = None,
                 artifact: Callable[[str, str], Any] | None = None):
        self.sweep = sweep
        self.run = run
        self.stage = stage
        self.artifact = artifact

    def resolve(self, value: Any, _stack: tuple[str, ...] = ()) -> Any:
        if isinstance(value, dict):
            return {k: self.resolve(v, _stack) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, _stack) for v in value]
        if not isinstance(value, str) or "${" not in value:
            return value
        whole = _REFERENCE.fullmatch(value)
        if whole and is_plan_time(whole.group(1)):
            return self.lookup(whole.group(1).strip(), _stack)

        def substitute(match: re.Match[str]) -> str:
            expression = match.group(1)
            if not is_plan_time(expression):
                return match.group(0)
            resolved = self.lookup(expression.strip(), _stack)
            if isinstance(resolved, dict | list):
                raise InterpolationError(f"${{{expression}}} is a table or list and cannot be "
                                         "embedded in a string")
            return as_text(resolved)

        return _REFERENCE.sub(substitute, value)

    def lookup(self, expression: str, stack: tuple[str, ...]) -> Any:
        if expression in stack:
            cycle = " → ".join(f"${{{e}}}" for e in (*stack, expression))
            raise InterpolationError(f"interpolation cycle: {cycle}")
        if expression.startswith("art:"):
            name, _, field = expression[4:].partition(",")
            if self.artifact is None:
                raise InterpolationError(f"${{{expression}}} is not available here")
            # A plain-path input may itself be a reference (${stage.prep.outputs.data}).
            value = self.artifact(name.strip(), field.strip() or "path")
            if isinstance(value, Unresolved):
                return value
            return self.resolve(value, (*stack, expression))
        namespace, _, name = expression.partition(".")
        if namespace == "sweep":
            if name not in self.sweep:
                raise InterpolationError(f"${{{expression}}} is undefined: no sweep parameter "
                                         f'"{name}"', did_you_mean(name, self.sweep)
                                         or _available("sweep parameters", self.sweep))
            return self.resolve(self.sweep[name], (*stack, expression))
        if namespace == "run":
            if name not in self.run:
                raise InterpolationError(f"${{{expression}}} is undefined",
                                         did_you_mean(name, self.run) or _available("run keys", self.run))
            return self.run[name]
        if self.stage is None:
            raise InterpolationError(f"${{{expression}}} is not available here")
        return self.stage(name)


def _available(what: str, names: Mapping[str, Any]) -> str:
    return f"{what}: {', '.join(names) or 'none'}"


def as_text(value: Any) -> str:
    """A value inside a string or an environment variable: booleans as YAML writes them."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)
