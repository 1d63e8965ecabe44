"""Progress of a drain for the CLI: a rich bar on a terminal, one log line per step otherwise.

Used by `syncd initial-sync` and `syncd demo`. The bar counts rows settled plus what running
bulk jobs have processed (as Zoho reports it), so it moves while a job runs.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from rich.console import Console
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar

from syncd.engine.progress import Progress, ProgressCallback, eta

logger = logging.getLogger(__name__)


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def describe(progress: Progress, total: int, left: timedelta | None) -> str:
    """One line of where a drain stands: steps, running jobs with Zoho's count, ETA."""
    p = progress
    jobs = "".join(f"; job {j.job_id} {j.processed:,}/{j.rows:,} processed" for j in p.jobs)
    return (
        f"read {p.read:,}, encoded {p.encoded:,}, uploaded {p.uploaded:,} of {total:,}{jobs}; "
        f"{p.counts.confirmed:,} confirmed, {p.counts.rejected:,} rejected, "
        f"{p.jobs_done} job(s) done" + (f"; ETA {_age(left)}" if left is not None else "")
    )


def brief(progress: Progress, left: timedelta | None) -> str:
    """``describe`` for the bar's one line on a terminal: steps, running jobs, ETA."""
    p = progress
    jobs = "".join(f" · job {j.processed:,}/{j.rows:,}" for j in p.jobs)
    eta_text = f" · ETA {_age(left)}" if left is not None else ""
    return f"read {p.read:,} · up {p.uploaded:,}{jobs} · ✗ {p.counts.rejected:,}{eta_text}"


def _in_progress(progress: Progress, total: int) -> int:
    """Rows settled plus those running jobs have processed: what the bar shows as done."""
    return min(progress.settled + sum(j.processed for j in progress.jobs), total)


@contextmanager
def progress_bar(name: str, total: int) -> Iterator[ProgressCallback]:
    """A rich progress bar on a terminal; otherwise one log line per step of the drain."""
    started = time.monotonic()

    def left(progress: Progress) -> timedelta | None:
        return eta(progress, total, timedelta(seconds=time.monotonic() - started))

    if not sys.stderr.isatty():

        def log_line(progress: Progress) -> None:
            ahead = left(progress)
            logger.info(
                "progress (%s): %s",
                progress.step,
                describe(progress, total, ahead),
                extra={
                    "event": "progress",
                    "step": progress.step,
                    "read": progress.read,
                    "encoded": progress.encoded,
                    "uploaded": progress.uploaded,
                    "jobs": [
                        {"job_id": j.job_id, "processed": j.processed, "rows": j.rows}
                        for j in progress.jobs
                    ],
                    "jobs_done": progress.jobs_done,
                    "sent": progress.counts.sent,
                    "confirmed": progress.counts.confirmed,
                    "rejected": progress.counts.rejected,
                    "total": total,
                    "eta_seconds": None if ahead is None else round(ahead.total_seconds()),
                },
            )

        yield log_line
        return
    columns = (
        TextColumn(f"[bold]{name}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    with Bar(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(name, total=max(total, 1), detail="")
        shown = [0]

        def update(progress: Progress) -> None:
            # Never backwards: a finished job leaves the running ones a moment before its
            # rows count as settled.
            shown[0] = max(shown[0], _in_progress(progress, total))
            bar.update(task, completed=shown[0], detail=brief(progress, left(progress)))

        yield update
