"""Artifacts: versioned, path-centric inputs and outputs with lineage (art:// URIs)."""
