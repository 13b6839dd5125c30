"""runspec: one checked-in manifest → validated, planned, applied ML launches.

Importing this package is cheap on purpose: heavy libraries (torch, ray, wandb,
codecarbon, nemo_run, matplotlib) are imported only inside the functions that need them.
"""

__version__ = "0.2.0"


def report(**metrics: float) -> None:
    """Report metrics from a recipe: one JSON line appended to ``$RUNSPEC_METRICS``.

    ``runspec.report(loss=0.41, tokens_per_s=5230.0)``. Outside a runspec run (no
    ``RUNSPEC_METRICS``) it does nothing, so recipes run the same by hand. The rank comes
    from ``RANK`` (torchrun sets it); see runspec.measure.metrics for how ranks combine.
    """
    import json
    import os

    target = os.environ.get("RUNSPEC_METRICS")
    if not target:
        return
    record = {"rank": int(os.environ.get("RANK", "0")), **metrics}
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
