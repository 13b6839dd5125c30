"""State: what was applied, per run key (DESIGN §4). Plan reads it; apply writes it."""
