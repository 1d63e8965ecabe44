"""`syncd status [--json]`: what each pipeline is doing, from the state store and the legacy DB."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from syncd.app import App
from syncd.commands.context import settings_of
from syncd.config import PipelineSettings
from syncd.credits import BUDGET_WINDOW
from syncd.daemon.sharing import HOST_ALIVE
from syncd.deletes import deletes_status
from syncd.engine.backoff import BULK_SCOPE
from syncd.engine.lookups import count_waiting, lookup_fields, waits_for
from syncd.errors import SourceError
from syncd.model import Backoff
from syncd.state.hosts import HostStore
from syncd.state.lease import HEARTBEAT
from syncd.state.store import LeaseRecord

STALE_LEASE = HEARTBEAT * 5
"""A lease record whose heartbeat is older than this was left by a worker that died."""


def lease_status(lease: LeaseRecord | None, now: datetime) -> dict[str, Any] | None:
    if lease is None:
        return None
    age = now - lease.heartbeat_at
    return {
        "holder": lease.holder,
        "since": lease.acquired_at.isoformat(),
        "heartbeat": lease.heartbeat_at.isoformat(),
        "heartbeat_age_seconds": int(age.total_seconds()),
        "alive": age <= STALE_LEASE,
    }


def pipeline_status(app: App, pipeline: PipelineSettings, now: datetime) -> dict[str, Any]:
    store = app.store
    try:
        pending: int | str = app.table(pipeline).count_pending()
    except SourceError as exc:
        pending = f"unavailable: {exc}"
    buffered, oldest = store.buffer_stats(pipeline.name)
    lease = store.lease_holder(pipeline.name)
    waiting: dict[str, int] | str = {}
    lookups = lookup_fields(pipeline.fields)
    if lookups and not isinstance(pending, str):
        try:
            waiting = count_waiting(app.table(pipeline), store, lookups, pipeline=pipeline.name)
        except SourceError as exc:
            waiting = f"unavailable: {exc}"
    return {
        "pipeline": pipeline.name,
        "mode": pipeline.mode,
        "pending": pending,
        "buffered": buffered,
        "oldest_wait_seconds": None if oldest is None else int((now - oldest).total_seconds()),
        "jobs_in_flight": store.jobs_in_flight(pipeline.name),
        "rejects": store.count_rejects(pipeline.name),
        # pending rows whose lookup parent has no CRM record yet, by parent pipeline
        "waiting_for": waiting,
        "bulk_backoff": _backoff_status(store.backoff(pipeline.name, BULK_SCOPE), now),
        # a create call's reply was lost: Zoho may have charged a job syncd never saw
        "jobs_maybe_paid_twice_24h": store.count_uncertain(pipeline.name, now - BUDGET_WINDOW),
        "initial_sync_done": store.has_succeeded(pipeline.name, "initial"),
        "lease": lease_status(lease, now),
        "deletes": deletes_status(app, pipeline),
        "last_runs": [
            {
                "id": r.id,
                "kind": r.kind,
                "status": r.status,
                "started": r.started_at.isoformat(),
                "finished": r.finished_at.isoformat() if r.finished_at else None,
                "sent": r.counts.sent,
                "confirmed": r.counts.confirmed,
                "rejected": r.counts.rejected,
                "credits": r.counts.credits,
                "error": r.error,
            }
            for r in store.last_runs(pipeline.name, 5)
        ],
    }


def _backoff_status(backoff: Backoff | None, now: datetime) -> dict[str, Any] | None:
    """Failed bulk jobs in a row, and until when no bulk job is created."""
    if backoff is None:
        return None
    return {
        "failures": backoff.failures,
        "paused": backoff.blocks(now),
        "until": backoff.next_at.isoformat(),
        "last_error": backoff.last_error,
    }


def _org_credits(app: App, now: datetime) -> dict[str, Any]:
    """The whole org's credits as Zoho last reported them, and the reserve syncd keeps."""
    org = app.store.org_remaining()
    return {
        "remaining": None if org is None else org[0],
        "seen_at": None if org is None else org[1].isoformat(),
        "seen_seconds_ago": None if org is None else int((now - org[1]).total_seconds()),
        "reserve": app.settings.crm.credit_reserve,
    }


def _notify(app: App) -> list[dict[str, Any]]:
    """The [[notify]] targets (URL masked: it is a credential) and what they were told of."""
    return [
        {
            "name": target.name,
            "kind": target.kind,
            "url": target.display_url,
            "active": sorted(app.store.alerts_active(target.name)),
        }
        for target in app.settings.notify
    ]


def collect(app: App) -> dict[str, Any]:
    now = app.clock.now()
    spent = app.store.credits_spent_since(now - BUDGET_WINDOW)
    budget = app.settings.crm.daily_credit_budget
    calls = app.store.calls_since(now - BUDGET_WINDOW)
    return {
        "credits": {
            "spent_24h": spent,
            "budget": budget,
            "remaining": max(budget - spent, 0),
            "calls_24h": {k: {"calls": c, "credits": cr} for k, (c, cr) in calls.items()},
            "org": _org_credits(app, now),
        },
        "pipelines": [pipeline_status(app, p, now) for p in app.settings.pipelines],
        "daemons": _daemons(app, now),
        "notify": _notify(app),
    }


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _daemons(app: App, now: datetime) -> list[dict[str, Any]]:
    """The daemons alive on this state store, and the pipelines each runs."""
    names = [p.name for p in app.settings.pipelines]
    holders = {name: app.store.lease_holder(name) for name in names}
    return [
        {
            "host": host,
            "pipelines": [n for n, h in holders.items() if h is not None and h.holder == host],
        }
        for host in HostStore(app.store).alive(now - HOST_ALIVE)
    ]


def _deletes_text(deletes: dict[str, Any]) -> str:
    text = (
        f"  deleted rows ({deletes['on_delete']}): {deletes['pending']:,} pending, "
        f"{deletes['approved']:,} approved, max_deletes {deletes['max_deletes']:,}"
    )
    if deletes["waiting_for_approval"]:
        text += (
            f"; {deletes['waiting_for_approval']:,} WAIT FOR APPROVAL (`syncd deletes list`, "
            "`syncd deletes approve`)"
        )
    if deletes["failing"]:
        text += f"; {deletes['failing']:,} failed at least once"
    return text


def _waiting_lines(waiting: dict[str, int] | str) -> list[str]:
    """Rows held back until their lookup parent is in the CRM (not rejects: they go then)."""
    if isinstance(waiting, str):
        return [f"  rows waiting for a parent: {waiting}"]
    return [
        "  {:,} waiting for {} ({})".format(rows, *waits_for(parent))
        for parent, rows in sorted(waiting.items())
    ]


def _lease_text(lease: dict[str, Any] | None) -> str:
    if lease is None:
        return "nobody (no daemon running)"
    if lease["alive"]:
        return f"{lease['holder']} (heartbeat {_age(lease['heartbeat_age_seconds'])} ago)"
    return (
        f"nobody: {lease['holder']} stopped sending heartbeats "
        f"{_age(lease['heartbeat_age_seconds'])} ago (no daemon running?)"
    )


def _print(data: dict[str, Any]) -> None:
    credits = data["credits"]
    click.echo(
        f"credits: {credits['spent_24h']:,} spent in the last 24 h of a budget of "
        f"{credits['budget']:,} ({credits['remaining']:,} left)"
    )
    org = credits["org"]
    if org["remaining"] is None:
        seen = "Zoho has not reported it (it does once half the org's credits are used)"
    else:
        seen = f"{org['remaining']:,} left, as Zoho said {_age(org['seen_seconds_ago'])} ago"
    click.echo(f"org credits: {seen}; {org['reserve']:,} kept for other integrations")
    for daemon in data["daemons"]:
        runs = ", ".join(daemon["pipelines"]) or "no pipeline (standby)"
        click.echo(f"daemon {daemon['host']}: runs {runs}")
    for target in data["notify"]:
        active = ", ".join(target["active"]) or "nothing"
        click.echo(f"notify {target['name']} ({target['kind']} {target['url']}): told of {active}")
    for p in data["pipelines"]:
        pending = p["pending"] if isinstance(p["pending"], str) else f"{p['pending']:,}"
        lease = _lease_text(p["lease"])
        click.echo(f"\npipeline {p['pipeline']} ({p['mode']})")
        click.echo(
            f"  pending {pending}   buffered {p['buffered']:,} (oldest "
            f"{_age(p['oldest_wait_seconds'])})   jobs in flight {p['jobs_in_flight']}   "
            f"rejects {p['rejects']:,}"
        )
        click.echo(
            f"  initial sync {'done' if p['initial_sync_done'] else 'NOT done'};  "
            f"lease held by {lease}"
        )
        for line in _waiting_lines(p["waiting_for"]):
            click.echo(line)
        if (deletes := p["deletes"]) is not None:
            click.echo(_deletes_text(deletes))
        if p["jobs_maybe_paid_twice_24h"]:
            click.echo(
                f"  {p['jobs_maybe_paid_twice_24h']} bulk job(s) in the last 24 h may have been "
                "paid twice (the reply to their create call was lost; see `syncd jobs list`)"
            )
        if (backoff := p["bulk_backoff"]) is not None:
            state = f"wait until {backoff['until'][:19]}" if backoff["paused"] else "may go again"
            click.echo(
                f"  bulk writes {state} ({backoff['failures']} failed job(s) in a row): "
                f"{backoff['last_error']}"
            )
        for run in p["last_runs"]:
            click.echo(
                f"  run {run['id']:>5} {run['kind']:<9} {run['status']:<11} "
                f"{run['started'][:19]}  sent {run['sent']:,} ok {run['confirmed']:,} "
                f"rejected {run['rejected']:,} credits {run['credits']:,}"
                + (f"  error: {run['error']}" if run["error"] else "")
            )


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Per pipeline: pending, buffered, oldest wait, runs, jobs, rejects, credits, lease."""
    with App.open(settings_of(ctx)) as app:
        data = collect(app)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        _print(data)


COMMANDS = [status]
