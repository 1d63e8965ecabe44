"""Run ``syncd ARGS...`` under cProfile timed by CPU time, not wall time.

    .venv/bin/python -m bench.cpu_profile OUT.prof -c config.toml initial-sync

``python -m cProfile`` times with the wall clock, so waits on the database and the CRM look
like work; this profile shows only what syncd's own process spends CPU on.
"""

from __future__ import annotations

import cProfile
import sys
import time

from syncd.cli import main

if __name__ == "__main__":
    out, *args = sys.argv[1:]
    profile = cProfile.Profile(time.process_time)
    try:
        profile.runcall(main, args)
    finally:
        profile.dump_stats(out)
