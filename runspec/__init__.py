"""runspec: one checked-in manifest → validated, planned, applied ML launches.

Importing this package is cheap on purpose: heavy libraries (torch, ray, wandb,
codecarbon, nemo_run, matplotlib) are imported only inside the functions that need them.
"""

__version__ = "0.1.0"
