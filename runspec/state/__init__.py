"""State: what was applied, per run key. Plan reads it; apply writes it."""
