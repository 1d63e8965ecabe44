"""`syncd lookup KEY`: what syncd knows of one legacy key, and (``--crm``) its CRM record now."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import click

from syncd.app import App
from syncd.commands import chosen_pipeline, identity_lines, pipeline_option
from syncd.commands.context import settings_of
from syncd.config import PipelineSettings
from syncd.errors import KeyUnknown
from syncd.model import Identity, Reject

LABEL_WIDTH = 14  # as `syncd rejects show`


@dataclass(frozen=True)
class CrmView:
    """What ``--crm`` read: ``record_id`` None when no record is known (nothing was fetched),
    ``values`` None when the record no longer exists in the CRM."""

    record_id: str | None
    values: dict[str, object] | None


@dataclass(frozen=True)
class Lookup:
    pipeline: PipelineSettings
    key: str
    identity: Identity | None
    reject: Reject | None
    crm: CrmView | None = None  # None: --crm was not asked for


def crm_fields(pipeline: PipelineSettings) -> list[str]:
    """The fields ``--crm`` reads: the unique field (the key itself), then the mapped ones."""
    return list(dict.fromkeys([pipeline.unique_field, *(f.api_name for f in pipeline.fields)]))


def read_crm(app: App, pipeline: PipelineSettings, identity: Identity | None) -> CrmView:
    """The record's current values of ``crm_fields``, in one Get Records call (1 credit)."""
    if identity is None:
        return CrmView(None, None)
    found = app.crm.records_by_id(pipeline.module, [identity.record_id], crm_fields(pipeline))
    return CrmView(identity.record_id, found.get(identity.record_id))


def as_json(found: Lookup) -> dict[str, Any]:
    identity, reject = found.identity, found.reject
    report: dict[str, Any] = {
        "pipeline": found.pipeline.name,
        "module": found.pipeline.module,
        "key": found.key,
        "identity": None,
        "reject": None,
    }
    if identity is not None:
        report["identity"] = {
            "record_id": identity.record_id,
            "seen_at": identity.seen_at.isoformat(),
            "confirmed_at": _iso(identity.confirmed_at),
            "content_hash": identity.content_hash,
        }
    if reject is not None:
        report["reject"] = {
            "code": reject.code,
            "field": reject.field,
            "message": reject.message,
            "attempts": reject.attempts,
            "rejected_at": reject.rejected_at.isoformat(),
            "content_hash": reject.content_hash,
        }
    if found.crm is not None:
        exists = None if found.crm.record_id is None else found.crm.values is not None
        report["crm"] = {
            "record_id": found.crm.record_id,
            "exists": exists,
            "values": found.crm.values,
        }
    return report


def as_text(found: Lookup) -> list[str]:
    """Label: value lines for a person, as `syncd rejects show` prints them."""
    pipeline = found.pipeline
    pairs = [("pipeline", f"{pipeline.name} (module {pipeline.module})"), ("key", found.key)]
    if found.identity is None:
        pairs.append(("CRM record", "no CRM record known for this key yet"))
    else:
        record, *confirmed = identity_lines(found.identity)
        pairs += [record, ("seen at", found.identity.seen_at.isoformat()), *confirmed]
    pairs += _reject_pairs(found.reject)
    lines = [f"{label:>{LABEL_WIDTH}}: {value}" for label, value in pairs]
    if found.crm is not None:
        lines += ["", *_crm_lines(found.crm, pipeline)]
        lines += _other_key_warning(found)
    return lines


def _reject_pairs(reject: Reject | None) -> list[tuple[str, str]]:
    if reject is None:
        return [("reject", "no")]
    attempts = f"{reject.attempts} attempt{'s' if reject.attempts != 1 else ''}"
    return [
        ("reject", reject.code),
        ("reject field", reject.field or "-"),
        ("reject message", reject.message or "-"),
        ("rejected at", f"{reject.rejected_at.isoformat()} ({attempts})"),
    ]


def _crm_lines(crm: CrmView, pipeline: PipelineSettings) -> list[str]:
    if crm.record_id is None:
        return ["CRM: nothing to read, syncd knows no CRM record for this key"]
    if crm.values is None:
        return [
            f"CRM: record {crm.record_id} no longer exists in {pipeline.module} "
            "(deleted or merged in the CRM)"
        ]
    columns = {f.api_name: f.column for f in pipeline.fields} | {
        pipeline.unique_field: pipeline.key
    }
    labels = {
        name: f"{name} ({columns[name]})" if name in columns else name
        for name in crm_fields(pipeline)
    }
    width = max(LABEL_WIDTH, *(len(label) for label in labels.values()))
    lines = [f"CRM: record {crm.record_id} in {pipeline.module} now holds"]
    for name, label in labels.items():
        value = json.dumps(crm.values[name], ensure_ascii=False) if name in crm.values else "-"
        lines.append(f"{label:>{width}}: {value}")
    return lines


def _other_key_warning(found: Lookup) -> list[str]:
    """A record whose unique field holds another key belongs to another row now."""
    values = found.crm.values if found.crm is not None else None
    held = (values or {}).get(found.pipeline.unique_field, found.key)
    if held is None or str(held) == found.key:
        return []
    return [
        f"warning: the record's {found.pipeline.unique_field} is {held!r}, not {found.key!r}: "
        "it holds another row's data now"
    ]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@click.command("lookup")
@pipeline_option
@click.option(
    "--crm", "read_crm_now", is_flag=True, help="Also read the record's CRM values now (1 credit)."
)
@click.option("--json", "as_json_output", is_flag=True, help="Print JSON instead of text.")
@click.argument("key")
@click.pass_context
def lookup(
    ctx: click.Context,
    pipeline_name: str | None,
    read_crm_now: bool,
    as_json_output: bool,
    key: str,
) -> None:
    """What syncd knows of legacy KEY: its CRM record, when it was last confirmed and with
    what content, and whether it is a reject.

    Exits 1 when syncd knows neither a CRM record nor a reject for KEY.
    """
    settings = settings_of(ctx)
    pipeline = settings.pipeline(chosen_pipeline(settings, pipeline_name))
    with App.open(settings) as app:
        identity = app.store.identity(pipeline.name, key)
        reject = app.store.get_reject(pipeline.name, key)
        if identity is None and reject is None:
            raise KeyUnknown(pipeline.name, key)
        crm = read_crm(app, pipeline, identity) if read_crm_now else None
    found = Lookup(pipeline, key, identity, reject, crm)
    if as_json_output:
        click.echo(json.dumps(as_json(found), indent=2, ensure_ascii=False))
    else:
        click.echo("\n".join(as_text(found)))


COMMANDS = [lookup]
