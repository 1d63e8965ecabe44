"""`syncd import`: one Bulk Write job per part of a CSV file, journaled like the sync's jobs.

The journal (``syncd_bulk_jobs``) holds each part under a pseudo pipeline ``import:<file>:<id>``
whose id is the file's content and the options (``files.fingerprint``); its manifest lists
the part's record numbers in upload order. A re-run of the same command therefore finds the jobs
an earlier, killed run created, and polls and applies them instead of paying for them again.
Settled rows live in the parts directory beside the input (one results file per part), so only
rows with no final answer are sent again.
"""

from __future__ import annotations

import json
import logging
import time
import zipfile
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from syncd.credits import BULK_JOB_CREDITS
from syncd.crm.bulk_csv import BulkLimits
from syncd.engine.drain import AMBIGUOUS_CODES
from syncd.engine.pace import JobPace
from syncd.errors import (
    BudgetExceeded,
    CrmError,
    CrmFatalError,
    CrmRetriableError,
    SyncdError,
    UsageError,
)
from syncd.importing.files import (
    ImportSpec,
    Part,
    match_results,
    part_rows,
    settled_records,
    write_part_results,
    write_parts,
)
from syncd.model import BulkFile, BulkJobStatus, JobState
from syncd.ports import Clock, OpenJob

logger = logging.getLogger(__name__)

_IDENTITY_FILE = "import.json"


class ImportCrm(Protocol):
    """The Zoho calls an import makes."""

    def upload_bulk_file(self, file: BulkFile) -> str: ...

    def create_import_job(
        self,
        module: str,
        operation: str,
        find_by: str | None,
        header: Sequence[str],
        file_id: str,
        *,
        ignore_empty: bool = False,
    ) -> str: ...

    def bulk_job_status(self, job_id: str) -> BulkJobStatus: ...

    def bulk_result_rows(self, status: BulkJobStatus) -> list[list[str]]: ...


class ImportState(Protocol):
    """The journal and the credit ledger of syncd's state store."""

    def journal_prepare(
        self,
        pipeline: str,
        run_id: int | None,
        file_path: str,
        manifest: Mapping[str, str],
        now: datetime,
    ) -> int: ...

    def journal_sending(self, entry_id: int, now: datetime) -> None: ...

    def journal_created(self, entry_id: int, job_id: str, now: datetime) -> None: ...

    def journal_finish(
        self, entry_id: int, state: JobState, now: datetime, error: str | None = None
    ) -> None: ...

    def journal_open(self, pipeline: str) -> Sequence[OpenJob]: ...

    def record_credits(self, kind: str, credits: int, at: datetime, calls: int = 1) -> None: ...


@dataclass(frozen=True)
class JobEvent:
    """A job was created (``counts`` None) or finished (rows per result STATUS)."""

    part: int
    job_id: str
    rows: int
    counts: dict[str, int] | None = None
    error: str | None = None


@dataclass(frozen=True)
class _InFlight:
    entry_id: int
    job_id: str
    part: int
    path: Path
    records: tuple[int, ...]
    created_at: datetime | None = None  # when Zoho took it (None: resumed from the journal)


@dataclass
class ImportRun:
    """One `syncd import` invocation's wiring and knobs."""

    spec: ImportSpec
    header: list[str]
    fingerprint: str
    crm: ImportCrm
    state: ImportState
    clock: Clock
    limits: BulkLimits = field(default_factory=BulkLimits)
    jobs_in_flight: int = 2
    poll_interval: timedelta = timedelta(seconds=5)
    job_timeout: timedelta = timedelta(hours=2)
    sleep: Callable[[float], None] = time.sleep
    on_job: Callable[[JobEvent], None] = lambda _event: None
    failed_jobs: int = 0
    uncertain_jobs: int = 0
    pace: JobPace = field(init=False)

    def __post_init__(self) -> None:
        # The parts of one file are alike: the drain's pace of status calls serves them too.
        self.pace = JobPace(self.poll_interval.total_seconds())

    @property
    def pipeline(self) -> str:
        """The journal's name for this import (fits its 100-character column)."""
        return journal_name(self.spec, self.fingerprint)


def journal_name(spec: ImportSpec, fingerprint: str) -> str:
    return f"import:{spec.path.name[:60]}:{fingerprint[:16]}"


def check_parts_dir(spec: ImportSpec, fingerprint: str) -> bool:
    """Whether an unfinished run of this very import left its parts directory (``UsageError``
    when the directory belongs to another version of the file or other options)."""
    identity = spec.parts_dir / _IDENTITY_FILE
    if not identity.is_file():
        return False
    known = json.loads(identity.read_text(encoding="utf-8")).get("fingerprint")
    if known != fingerprint:
        raise UsageError(
            f"{spec.path}: an unfinished import of another version of this file (or with "
            f"other options) is kept in {spec.parts_dir}; run that import again to finish it, "
            "or delete the directory to start over"
        )
    return True


def open_parts_dir(spec: ImportSpec, fingerprint: str) -> Path:
    """The parts directory, created for this import or checked to belong to it."""
    directory = spec.parts_dir
    if check_parts_dir(spec, fingerprint):
        return directory
    directory.mkdir(exist_ok=True)
    identity = directory / _IDENTITY_FILE
    identity.write_text(json.dumps({"fingerprint": fingerprint}), encoding="utf-8")
    return directory


def run_import(run: ImportRun) -> None:
    """Finish the jobs an earlier run left, then send every row not settled yet."""
    directory = open_parts_dir(run.spec, run.fingerprint)
    in_flight = deque(_recover(run))
    covered = settled_records(directory) | {n for job in in_flight for n in job.records}
    parts = write_parts(
        run.spec.path,
        run.header,
        run.spec.find_by,
        directory,
        skip=covered,
        first_number=_next_part_number(directory),
        limits=run.limits,
    )
    try:
        for part in parts:
            while len(in_flight) >= run.jobs_in_flight:
                _finish(run, in_flight.popleft())
            in_flight.append(_start(run, part))
    finally:
        parts.close()  # deletes a part being written when a failure stops the loop
    while in_flight:
        _finish(run, in_flight.popleft())


def _recover(run: ImportRun) -> list[_InFlight]:
    """The journal's open entries for this import: jobs Zoho has are resumed, never created
    again; a create call cut off by the kill is counted as maybe paid, and its rows go again."""
    resumed = []
    for entry in run.state.journal_open(run.pipeline):
        path = Path(entry.file_path)
        if entry.state is JobState.SENDING:
            run.state.record_credits("bulk_create_uncertain", BULK_JOB_CREDITS, run.clock.now())
            _close(run, entry.id, path, JobState.UNCERTAIN, "syncd stopped during the create call")
            run.uncertain_jobs += 1
        elif entry.job_id is None:
            _close(run, entry.id, path, JobState.FAILED, "never created: the run stopped first")
        else:
            records = tuple(int(n) for n in entry.manifest)
            logger.info(
                "resuming import job %s",
                entry.job_id,
                extra={"event": "import_job_resumed", "job_id": entry.job_id},
            )
            resumed.append(_InFlight(entry.id, entry.job_id, _part_number(path), path, records))
    return resumed


def _start(run: ImportRun, part: Part) -> _InFlight:
    """Journal, upload and create one part's job. SENDING covers exactly the create call: the
    one moment a lost reply leaves Zoho with a job syncd cannot see."""
    manifest = {str(n): "" for n in part.records}
    entry = run.state.journal_prepare(run.pipeline, None, str(part.path), manifest, run.clock.now())
    try:
        job_id = _upload_and_create(run, entry, part)
    except CrmRetriableError as exc:
        if exc.code not in AMBIGUOUS_CODES:
            _close(run, entry, part.path, JobState.FAILED, f"not created: {exc}")
            raise
        why = f"the reply to the create call was lost ({exc}); Zoho may have the job"
        _close(run, entry, part.path, JobState.UNCERTAIN, why)
        run.uncertain_jobs += 1
        raise SyncdError(
            f"job {part.number}: {why}, paid for but out of syncd's sight. Run the same "
            "import again: its rows go once more (a re-run by --find-by duplicates nothing)"
        ) from exc
    except (CrmError, BudgetExceeded) as exc:  # Zoho refused, or the call never left
        _close(run, entry, part.path, JobState.FAILED, f"not created: {exc}")
        raise
    created_at = run.clock.now()
    run.state.journal_created(entry, job_id, created_at)
    run.on_job(JobEvent(part.number, job_id, len(part.records)))
    return _InFlight(entry, job_id, part.number, part.path, part.records, created_at)


def _upload_and_create(run: ImportRun, entry: int, part: Part) -> str:
    file = BulkFile(str(part.path), (), len(part.records), part.zipped_bytes)
    file_id = run.crm.upload_bulk_file(file)
    run.state.journal_sending(entry, run.clock.now())
    spec = run.spec
    return run.crm.create_import_job(
        spec.module,
        spec.operation,
        spec.find_by,
        part_rows(part.path)[0],  # the uploaded header: find_by first
        file_id,
        ignore_empty=spec.ignore_empty,
    )


def _finish(run: ImportRun, job: _InFlight) -> None:
    """Wait for a job and keep its per-row results; a job that cannot give them (FAILED, its
    result or its part file gone) is closed with the reason, and its rows go again next run."""
    try:
        status = _wait(run, job)
        if status.state == "FAILED":
            raise CrmFatalError(f"Zoho reported bulk job {job.job_id} FAILED", code="JOB_FAILED")
        result = run.crm.bulk_result_rows(status)
    except CrmFatalError as exc:
        return _unfinishable(run, job, str(exc))
    try:
        uploaded = part_rows(job.path)[1:]
    except (OSError, KeyError, zipfile.BadZipFile) as exc:  # deleted or damaged meanwhile
        return _unfinishable(run, job, f"its part file {job.path} is unreadable ({exc})")
    rows = match_results(job.records, uploaded, result)
    write_part_results(run.spec.parts_dir, job.part, rows)
    _close(run, job.entry_id, job.path, JobState.APPLIED, None)
    counts: dict[str, int] = {}
    for _number, status_cell, _id, _errors in rows:
        counts[status_cell] = counts.get(status_cell, 0) + 1
    run.on_job(JobEvent(job.part, job.job_id, len(job.records), counts))
    return None


def _unfinishable(run: ImportRun, job: _InFlight, why: str) -> None:
    _close(run, job.entry_id, job.path, JobState.FAILED, why)
    run.failed_jobs += 1
    run.on_job(JobEvent(job.part, job.job_id, len(job.records), {}, why))


def _wait(run: ImportRun, job: _InFlight) -> BulkJobStatus:
    """Poll when the import's pace says (``JobPace``: at once for the first job, then on a
    growing interval; later parts when the earlier ones' pace says they are due) until the
    job finishes or ``job_timeout`` passes; a job still running then stays journaled for the
    next run."""
    now = run.clock.now()
    deadline = now + run.job_timeout
    created_at = job.created_at or now
    running_at: float | None = None
    for wait in run.pace.waits(len(job.records), (now - created_at).total_seconds()):
        if wait:
            run.sleep(wait)
        asked = run.clock.now()
        status = run.crm.bulk_job_status(job.job_id)
        if status.finished:
            if job.created_at is not None:  # a resumed job's age is not its run time
                run.pace.learn(len(job.records), running_at)
            return status
        if run.clock.now() >= deadline:
            raise CrmRetriableError(
                f"bulk job {job.job_id} still {status.state} after {run.job_timeout}; run the "
                "same import again later to apply it (it is not created again)",
                code="JOB_TIMEOUT",
            )
        running_at = (asked - created_at).total_seconds()  # it ran at least this long
    raise AssertionError("JobPace.waits is endless")  # pragma: no cover


def _close(run: ImportRun, entry: int, path: Path, state: JobState, error: str | None) -> None:
    run.state.journal_finish(entry, state, run.clock.now(), error)
    path.unlink(missing_ok=True)


def _part_number(path: Path) -> int:
    return int(path.name.split(".")[0].split("-")[1])


def _next_part_number(directory: Path) -> int:
    """Part numbers are never reused within one import, so no results file is overwritten."""
    numbers = [_part_number(p) for p in directory.glob("part-*") if p.name[5:10].isdigit()]
    return max(numbers, default=0) + 1
