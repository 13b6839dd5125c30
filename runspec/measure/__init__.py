"""In-job measurement: ``python -m runspec.measure --run-dir D -- CMD…`` wraps every run.

It writes ``started.json`` when the command starts and ``result.json`` when it ends, both
atomically, in the run directory: that is how runspec knows a run's fate even when the
process that launched it is gone (killed apply, Slurm, Ray).
"""

RESULT_FILE = "result.json"
STARTED_FILE = "started.json"
RESULT_FORMAT = 1
