"""Which runs a command acts on, kept apart from the pipeline so the CLI can build one
without importing the planner."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Selection:
    """Which runs a command acts on (Terraform's -target/-exclude/-replace) and --set values."""

    targets: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    replace: list[str] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)

    @property
    def unfiltered(self) -> bool:
        """Does it act on every run (no --target, --exclude or --replace)?"""
        return not (self.targets or self.excludes or self.replace)
