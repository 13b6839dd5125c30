"""Plan → jobs: execute a plan's changes through the backends, recording state as it goes."""
