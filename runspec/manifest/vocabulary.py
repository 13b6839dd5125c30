"""The manifest's fixed words and patterns, free of pydantic so the fast paths can use them."""

SCHEMA_ID = "runspec/v1"
RECIPE_KINDS = ("script", "module", "target", "command")
LAUNCHES = ("direct", "torchrun", "ray")
RESERVED_TABLES = ("wandb", "artifacts", "cache", "cli")
"""Top-level env.toml tables that are settings, not profiles (as in Nemotron)."""

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
TIME_PATTERN = r"^(\d+-)?\d{1,3}:\d{2}(:\d{2})?$|^\d+$"
MEM_PATTERN = r"^\d+(\.\d+)?[KMGT]?B?$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
