"""The state of one emulated org and the operations the HTTP layer calls on it."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from syncd.emulator.admin import tls_context
from syncd.emulator.auth import TokenIssuer
from syncd.emulator.bulk_jobs import Job, JobRequest, job_details
from syncd.emulator.bulk_run import BulkWorker, JobBoard, JobRunner
from syncd.emulator.faults import FaultState
from syncd.emulator.limits import CreditLedger, Gate, Stats
from syncd.emulator.records import Operation, RecordWriter
from syncd.emulator.schema import FieldSpec, stable_id
from syncd.emulator.settings import EmulatorSettings
from syncd.emulator.store import ModuleStore, RecordStore

logger = logging.getLogger(__name__)


class Emulator:
    """Records, tokens, credits, jobs and faults of the org; ``reset`` starts them afresh."""

    def __init__(self, settings: EmulatorSettings, base_url: str) -> None:
        self.settings = settings
        self.base_url = (settings.public_url or base_url).rstrip("/")
        self.zone = ZoneInfo(settings.time_zone)
        self.user = {"id": stable_id("user", settings.user_name), "name": settings.user_name}
        self._build()

    def _build(self) -> None:
        s = self.settings
        self.store = RecordStore(s.schema)
        self.faults = FaultState(s.faults, s.seed)
        self.writer = RecordWriter(s, self.zone, self.store.ids, self.faults, self.store.module)
        self.tokens = TokenIssuer(s)
        self.credits = CreditLedger(s.daily_credits, s.credit_window_seconds)
        self.gate = Gate(s.concurrency, s.sub_concurrency)
        self.stats = Stats()
        self.board = JobBoard()
        self.runner = JobRunner(self.store, s, self.zone, self.stats, self.faults, self._finished)
        self.worker = None if s.instant_jobs else BulkWorker(self.board, self.runner, s)

    def start(self) -> None:
        if self.worker is not None:
            self.worker.start()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()

    def reset(self) -> None:
        """Forget every record, token, credit, file, job, stat and run-time fault."""
        self.stop()
        self._build()
        self.start()
        logger.info("emulator reset", extra={"event": "emulator_reset"})

    def now(self) -> str:
        return datetime.now(self.zone).isoformat(timespec="seconds")

    def write_records(
        self,
        op: Operation,
        store: ModuleStore,
        data: Sequence[Any],
        order: Sequence[FieldSpec],
        record_id: str | None,
    ) -> tuple[int, dict[str, Any]]:
        with self.store.lock:
            return self.writer.write(op, store, data, order, record_id)

    def read_records(
        self, store: ModuleStore, ids: Sequence[str], fields: Sequence[str] | None
    ) -> list[dict[str, Any]]:
        """The records of ``ids`` that exist, in that order: ``id`` and ``fields`` (None: all)."""
        with self.store.lock:
            found = [store.get(record_id) for record_id in ids]
            return [store.as_dict(record, fields) for record in found if record is not None]

    def create_job(self, request: JobRequest) -> Job:
        job = Job(
            id=self.store.ids.next_id(),
            request=request,
            created_time=self.now(),
            created_by=self.user,
            queued_at=time.monotonic(),
            rng=self.faults.child_rng(),
        )
        self.board.add_job(job)
        self.stats.bump("bulk", "jobs_created")
        return job

    def download_url(self, job: Job) -> str:
        org = self.settings.org_id
        elsewhere = self.faults.current.download_host
        if elsewhere:  # fault: the result announced on another host
            return f"{elsewhere.rstrip('/')}/v2/crm/{org}/bulk-write/{job.id}/{job.id}.zip"
        if self.settings.download_url_form == "relative":
            return f"/v2/crm/org{org}/bulk-write/{job.id}/{job.id}.zip"
        return f"{self.base_url}/v2/crm/{org}/bulk-write/{job.id}/{job.id}.zip"

    def job_details(self, job: Job) -> dict[str, Any]:
        return job_details(job, self.settings, self.download_url(job))

    def result_available(self, job: Job) -> bool:
        keep = self.settings.result_retention_seconds
        if job.result is None or job.finished_at is None:
            return False
        return keep is None or time.monotonic() - job.finished_at <= keep

    def org(self) -> dict[str, Any]:
        """One entry of ``GET /crm/v8/org`` (reference 5.0)."""
        org_id = self.settings.org_id
        return {
            "id": stable_id("org", org_id),
            "zgid": org_id,
            "domain_name": f"org{org_id}",
            "company_name": "syncd emulator",
            "primary_email": "emulator@example.com",
            "time_zone": self.settings.time_zone,
            "iso_code": "USD",
            "currency": "US Dollar - USD",
            "currency_symbol": "$",
            "country_code": "US",
            "type": "production",
            # the keys of Zoho's documented example (Get Organization Information); a trial
            # answers paid false, paid_type "free" and the trial edition in trial_type
            "license_details": {
                "paid": self.settings.edition != "free",
                "paid_type": self.settings.edition,
                "paid_expiry": None,
                "users_license_purchased": self.settings.users_license_purchased,
                "trial_type": None,
                "trial_expiry": None,
            },
        }

    def snapshot(self) -> dict[str, Any]:
        """``GET /_emulator/stats``."""
        counters = self.stats.snapshot()
        used = self.credits.used()
        return counters | {
            "credits": {
                "used": used,
                "remaining": self.credits.daily - used,
                "daily": self.credits.daily,
                "total": self.credits.total,
            },
            "tokens": {"minted": self.tokens.minted, "live": self.tokens.live},
            "concurrency": {"peak": self.gate.peak, "in_flight": self.gate.in_flight},
            "too_many_requests": sum(counters["throttled"].values()),
            "records": self.store.counts(),
            "faults_in_force": dataclasses.asdict(self.faults.current),
        }

    def _finished(self, job: Job) -> None:
        callback = job.request.callback
        if callback is None:
            return
        body = self.job_details(job)
        thread = threading.Thread(
            target=self._post_callback, args=(callback["url"], body), daemon=True
        )
        thread.start()

    def _post_callback(self, url: str, body: dict[str, Any]) -> None:
        for attempt in range(1, self.settings.callback_attempts + 1):
            try:
                response = httpx.post(
                    url,
                    json=body,
                    timeout=self.settings.callback_timeout_seconds,
                    verify=tls_context(),
                )
                outcome = str(response.status_code)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                outcome = type(exc).__name__
            else:
                if response.is_success:
                    self.stats.bump("bulk", "callbacks_sent")
                    return
            logger.warning(
                "bulk callback failed: %s",
                outcome,
                extra={"event": "emulator_callback_failed", "job": body["id"], "attempt": attempt},
            )
        self.stats.bump("bulk", "callbacks_failed")
