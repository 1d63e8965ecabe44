"""`initial-sync --dry-run`: build the files and price the plan without sending anything."""

from __future__ import annotations

from dataclasses import dataclass, field

from syncd.engine.apply import sendable
from syncd.engine.planner import plan_backlog
from syncd.engine.runtime import PipelineRuntime
from syncd.errors import RowNotRepresentable
from syncd.model import Api, BulkFile, BulkRow, PendingRow, Plan
from syncd.ports import RowEncoder


@dataclass
class DryRun:
    plans: list[Plan] = field(default_factory=list)
    files: list[BulkFile] = field(default_factory=list)
    not_representable: list[tuple[str, str]] = field(default_factory=list)  # key, reason
    skipped_rejects: int = 0

    @property
    def credits(self) -> int:
        return sum(p.credits for p in self.plans)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.plans)


def dry_run(rt: PipelineRuntime) -> DryRun:
    """Plan every batch as a real drain would; bulk batches are written to files."""
    report = DryRun()
    after = None
    while batch := rt.source.pending_batch(after, rt.tunables.batch_size):
        after = batch[-1].key
        rows = sendable(rt, batch)
        report.skipped_rejects += len(batch) - len(rows)
        encoded = _encode(rt.encoder, rows, report)
        if not encoded:
            continue
        plan = plan_backlog(len(encoded))
        report.plans.append(plan)
        if plan.api is Api.BULK:
            files = rt.crm.build_bulk_files(rt.unique_field, rt.encoder.bulk_columns(), encoded)
            report.files.extend(files)
    return report


def _encode(encoder: RowEncoder, rows: list[PendingRow], report: DryRun) -> list[BulkRow]:
    encoded: list[BulkRow] = []
    for row in rows:
        try:
            encoded.append(encoder.bulk_row(row))
            encoder.record(row)
        except RowNotRepresentable as exc:
            report.not_representable.append((row.key_text, str(exc)))
    return encoded
