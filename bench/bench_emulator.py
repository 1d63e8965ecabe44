"""How fast the bundled emulator processes Bulk Write rows, so benchmarks measure syncd.

    .venv/bin/python bench/bench_emulator.py                 # 1,000,000 rows, both modes
    .venv/bin/python bench/bench_emulator.py --rows 200000 --mode http --passes 2

``direct`` drives the in-process emulator (upload parsing, job validation, row processing,
result zip) without HTTP; ``http`` runs the whole flow over 127.0.0.1 like syncd does: upload
25,000-row zips, create upsert jobs (at most ``max_parallel_bulk_jobs`` at a time), poll,
download each result. A second pass upserts the same keys again, so every row is an update.
"""

from __future__ import annotations

import argparse
import csv
import io
import time
import zipfile
from collections import Counter

import httpx

from syncd.emulator.bulk_files import read_upload
from syncd.emulator.bulk_jobs import parse_job
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings

HEADER = ["parent_id", "Name", "Amount", "Order_Date", "Ordered_At", "Status", "Customer_Email"]
HEADER += ["Quantity", "Paid", "Notes"]
FORMATS = {"Order_Date": "yyyy-MM-dd", "Ordered_At": "yyyy-MM-dd'T'HH:mm:ssXXX"}
STATUSES = ["New", "Paid", "Shipped", "Cancelled", "Refunded"]


def make_zips(rows: int, per_file: int, generation: int) -> list[bytes]:
    """Zipped CSVs of Orders rows, ``per_file`` rows each, keys ``1..rows``."""
    zips = []
    for start in range(0, rows, per_file):
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(HEADER)
        for key in range(start + 1, min(rows, start + per_file) + 1):
            day = 1 + key % 28
            writer.writerow(
                [
                    key,
                    f"SO-{key:08d}-{generation}",
                    f"{key % 9973}.{key % 100:02d}",
                    f"2024-03-{day:02d}",
                    f"2024-03-{day:02d}T{key % 24:02d}:15:00+01:00",
                    STATUSES[key % 5],
                    f"customer{key}@example.com",
                    key % 50 + 1,
                    "true" if key % 2 else "false",
                    "",
                ]
            )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("orders.csv", text.getvalue())
        zips.append(buffer.getvalue())
    return zips


def job_body(file_id: str) -> dict[str, object]:
    mappings = [
        {"api_name": name, "index": i, **({"format": FORMATS[name]} if name in FORMATS else {})}
        for i, name in enumerate(HEADER)
    ]
    resource = {
        "type": "data",
        "module": {"api_name": "Orders"},
        "file_id": file_id,
        "find_by": "parent_id",
        "field_mappings": mappings,
    }
    return {"operation": "upsert", "ignore_empty": True, "resource": [resource]}


def run_direct(zips: list[bytes], settings: EmulatorSettings) -> Counter[str]:
    """Process every file in-process, one job after another."""
    outcome: Counter[str] = Counter()
    with EmulatorServer(settings) as server:
        emu = server.emulator
        for data in zips:
            file = read_upload(data, settings, emu.store.ids.next_id(), emu.now())
            emu.board.add_file(file)
            request = parse_job(
                job_body(file.id), settings.schema, emu.board.files, settings, emu.zone
            )
            job = emu.create_job(request)
            emu.runner.run_to_end(job)
            outcome.update({k.upper(): v for k, v in job.counts.items() if k != "total"})
    return outcome


def run_http(zips: list[bytes], server: EmulatorServer) -> Counter[str]:
    """The full flow over HTTP with at most ``max_parallel_bulk_jobs`` jobs in flight."""
    settings = server.settings
    client = httpx.Client(base_url=server.base_url, timeout=120)
    token = client.post(
        "/oauth/v2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": settings.client_id,
            "client_secret": settings.client_secret,
            "refresh_token": settings.refresh_token,
        },
    ).json()["access_token"]
    auth = {"Authorization": f"Zoho-oauthtoken {token}"}
    upload_headers = auth | {"feature": "bulk-write", "X-CRM-ORG": settings.org_id}
    pending, running, outcome = list(zips), [], Counter[str]()
    while pending or running:
        while pending and len(running) < settings.max_parallel_bulk_jobs:
            upload = client.post(
                "/crm/v8/upload",
                headers=upload_headers,
                files={"file": ("orders.zip", pending.pop(0))},
            ).json()
            job = client.post(
                "/crm/bulk/v8/write", headers=auth, json=job_body(upload["details"]["file_id"])
            ).json()
            running.append(job["details"]["id"])
        time.sleep(0.05)
        for job_id in list(running):
            status = client.get(f"/crm/bulk/v8/write/{job_id}", headers=auth).json()
            if status["status"] in ("COMPLETED", "FAILED"):
                running.remove(job_id)
                outcome.update(_result_statuses(client, status, auth))
    return outcome


def _result_statuses(client: httpx.Client, status: dict, auth: dict[str, str]) -> Counter[str]:
    content = client.get(status["result"]["download_url"], headers=auth).content
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        text = archive.read(archive.namelist()[0]).decode()
    return Counter(row["STATUS"] for row in csv.DictReader(io.StringIO(text)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--file-rows", type=int, default=25_000)
    parser.add_argument("--mode", choices=["direct", "http", "both"], default="both")
    parser.add_argument("--passes", type=int, default=1, help="2: the second pass updates")
    parser.add_argument(
        "--rate",
        type=float,
        default=10_000_000,
        help="bulk_rows_per_second (default: effectively unthrottled)",
    )
    args = parser.parse_args()
    settings = EmulatorSettings(bulk_rows_per_second=args.rate, daily_credits=10_000_000)
    began = time.perf_counter()
    zips = [z for g in range(args.passes) for z in make_zips(args.rows, args.file_rows, g)]
    print(
        f"built {len(zips)} zips of {args.file_rows:,} rows in {time.perf_counter() - began:.1f} s"
    )
    rows = args.rows * args.passes
    if args.mode in ("direct", "both"):
        began = time.perf_counter()
        counts = run_direct(zips, settings)
        _report("direct", rows, time.perf_counter() - began, counts)
    if args.mode in ("http", "both"):
        with EmulatorServer(settings) as server:
            began = time.perf_counter()
            counts = run_http(zips, server)
            _report("http", rows, time.perf_counter() - began, counts)


def _report(mode: str, rows: int, seconds: float, counts: Counter[str]) -> None:
    speed = rows / seconds
    print(f"{mode:>6}: {rows:,} rows in {seconds:.1f} s = {speed:,.0f} rows/s  {dict(counts)}")


if __name__ == "__main__":
    main()
