"""The CLI sets the cyclic collector up for millions of short-lived rows (BENCHMARKS.md)."""

from __future__ import annotations

import subprocess
import sys

from syncd.cli import GC_THRESHOLD

_PROBE = """
import gc
from syncd.cli import main
try:
    main(["--version"])
except SystemExit:
    pass
print("first:", gc.get_threshold(), gc.get_freeze_count() > 0)
threshold = gc.get_threshold()
try:
    main(["--version"])
except SystemExit:
    pass
print("again:", gc.get_freeze_count() > 0 and gc.get_threshold() == threshold)
"""


def test_a_syncd_process_freezes_its_start_up_and_collects_less_often() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    said = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert said["first"] == f"{GC_THRESHOLD} True"
    assert GC_THRESHOLD[0] > 700  # the default, which cost a quarter of the CPU
    assert said["again"] == "True"
