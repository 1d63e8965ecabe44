"""The demo's script: legacy database, emulator, config file, initial sync, realtime, report.

It goes through the same code paths an operator's installation does: a config file read by
``load_settings``, ``App`` for the initial sync (``run_drain``), and the ``Daemon`` itself for
realtime mode. The narrator (the CLI) is told what happens and draws the progress bar.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import create_engine

from syncd.app import App
from syncd.config import PipelineSettings, Settings, load_settings
from syncd.credits import CallKind
from syncd.demo import orders, report
from syncd.demo.realtime import RealtimeResult, RealtimeScript
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.engine.progress import ProgressCallback
from syncd.engine.runs import run_drain

FILES = ("config.toml", "legacy.db", "state.db")

# Fast enough for a short demo, slow enough that the initial sync visibly takes a moment.
BULK_ROWS_PER_SECOND = 10_000


class Narrator(Protocol):
    """What the demo tells its audience (the CLI prints it)."""

    def step(self, title: str) -> None: ...

    def say(self, text: str) -> None: ...

    def progress(self, total: int) -> AbstractContextManager[ProgressCallback]: ...


@dataclass(frozen=True)
class DemoOptions:
    rows: int = 30_000
    seed: int = 7
    max_delay_seconds: int = 10
    poll_interval_seconds: int = 1
    keep: Path | None = None  # keep the files here; None: a temporary directory, removed


@dataclass
class DemoResult:
    directory: Path
    kept: bool
    initial_seconds: float = 0.0
    realtime: RealtimeResult | None = None
    facts: report.Facts | None = None
    verification: report.Verification | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.verification is not None and self.verification.ok


def check_keep_directory(directory: Path) -> None:
    """Refuse to mix a new demo with the files of an earlier one."""
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory} exists and is not a directory")
    taken = [name for name in FILES if (directory / name).exists()]
    if taken:
        raise FileExistsError(
            f"{directory} already holds files of an earlier demo ({', '.join(taken)}); "
            "remove them or keep this run somewhere else"
        )


@contextmanager
def workspace(keep: Path | None) -> Iterator[Path]:
    """The demo's directory: ``keep`` (created if needed), or a temporary one removed after."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep.resolve()
        return
    directory = Path(tempfile.mkdtemp(prefix="syncd-demo-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run_demo(options: DemoOptions, narrator: Narrator) -> DemoResult:
    started = time.monotonic()
    with workspace(options.keep) as directory:
        result = DemoResult(directory, kept=options.keep is not None)
        emulator = EmulatorSettings(bulk_rows_per_second=BULK_ROWS_PER_SECOND, seed=options.seed)
        with EmulatorServer(emulator) as server:
            Demo(options, directory, server, narrator, result).run()
        result.seconds = time.monotonic() - started
    return result


class Demo:
    def __init__(
        self,
        options: DemoOptions,
        directory: Path,
        server: EmulatorServer,
        narrator: Narrator,
        result: DemoResult,
    ) -> None:
        self.options, self.directory, self.server = options, directory, server
        self.narrator, self.result = narrator, result
        self.config_path = directory / "config.toml"
        self.legacy_url = f"sqlite:///{directory / 'legacy.db'}"

    def run(self) -> None:
        started = datetime.now(UTC)
        self._create_legacy_database()
        self._write_config()
        settings = load_settings(self.config_path)
        pipeline = settings.pipelines[0]
        with App.open(settings, workdir=self.directory) as app:
            self._install_ddl(app, pipeline)
            self._initial_sync(app, pipeline)
            realtime_started = datetime.now(UTC)
            self.result.realtime = self._realtime(app, settings)
            self.result.facts = report.collect(app, pipeline, started, realtime_started)
            check = report.verify(app, pipeline, self.server.admin)
            for what in self.result.realtime.timeouts:
                check.problem(what)
            self.result.verification = check

    def _create_legacy_database(self) -> None:
        options, say = self.options, self.narrator.say
        self.narrator.step("A legacy order system")
        fate = "kept at the end" if self.result.kept else "removed at the end; --keep keeps it"
        say(f"Working in {self.directory} ({fate})")
        engine = create_engine(self.legacy_url)
        try:
            flaws = orders.create_orders(engine, options.rows, options.seed, date.today())
        finally:
            engine.dispose()
        say(f"{options.rows:,} orders in legacy.db (SQLite, local {orders.ZONE_NAME} times)")
        say(
            f"{flaws.total:,} of them have a flaw Zoho will refuse: {flaws.missing_number} "
            f"have no order number, {flaws.bad_email} a malformed e-mail address, "
            f"{flaws.unknown_status} a status the CRM's picklist does not know"
        )

    def _write_config(self) -> None:
        base = self.server.base_url
        self.config_path.write_text(
            config_text(self.directory, base, self.options), encoding="utf-8"
        )
        self.config_path.chmod(0o600)
        self.narrator.say(f"Zoho CRM emulator listening on {base}")
        self.narrator.say("syncd config written to config.toml, pointing at it")

    def _install_ddl(self, app: App, pipeline: PipelineSettings) -> None:
        table = app.table(pipeline)
        statements = [table.index_ddl(), table.trigger_ddl()]
        orders.install_ddl(app.source_engine, statements)
        self.narrator.say(
            "Installed the index and trigger that `syncd ddl` prints (a change sets sync = false):"
        )
        for statement in statements:
            self.narrator.say("  " + statement.replace("\n", "\n  "))

    def _initial_sync(self, app: App, pipeline: PipelineSettings) -> None:
        rt = app.runtime(pipeline)
        total = rt.source.count_pending()
        self.narrator.step(f"Initial sync of {total:,} rows")
        started, since = time.monotonic(), datetime.now(UTC)
        with app.pipeline_lease(pipeline.name), self.narrator.progress(total) as update:
            counts = run_drain(rt, "initial", update).counts
        self.result.initial_seconds = time.monotonic() - started
        jobs = app.store.calls_since(since).get(CallKind.BULK_JOB, (0, 0))[0]
        how = f"{jobs} bulk write job" + ("" if jobs == 1 else "s") if jobs else "records API calls"
        self.narrator.say(
            f"→ {counts.confirmed:,} confirmed, {counts.rejected:,} refused by Zoho; "
            f"{counts.credits:,} credits for {how}; {self.result.initial_seconds:.1f}s"
        )

    def _realtime(self, app: App, settings: Settings) -> RealtimeResult:
        options = self.options
        self.narrator.step("Realtime mode, while the shop keeps working")
        self.narrator.say(
            f"`syncd run` looks for changed rows every {options.poll_interval_seconds}s "
            "(poll_interval) and sends them as soon as 100 are waiting (flush_size), or once "
            f"the oldest has waited {options.max_delay_seconds}s (max_delay; 10 minutes by "
            "default, shortened for the demo)"
        )
        engine = create_engine(self.legacy_url)
        try:
            script = RealtimeScript(
                app, settings, self.config_path, orders.LegacyApp(engine), self.narrator.say
            )
            return script.run()
        finally:
            engine.dispose()


def config_text(directory: Path, base_url: str, options: DemoOptions) -> str:
    """A complete config file for the demo's database and the emulator."""
    emulator = EmulatorSettings()
    fields = "\n".join(f"{api} = {_toml(column)}" for api, column in orders.FIELDS)
    return f"""\
# Written by `syncd demo`: the demo's legacy SQLite table mirrored into the bundled Zoho CRM
# emulator. The emulator ran at {base_url} and has stopped; `syncd emulator --port
# {base_url.rsplit(":", 1)[-1]}` serves an empty one there. Every key: config.example.toml.

[source]
url = {_toml(f"sqlite:///{directory / 'legacy.db'}")}
timezone = "{orders.ZONE_NAME}"   # the shop stores local wall-clock times

[state]
url = {_toml(f"sqlite:///{directory / 'state.db'}")}

[crm]
# The emulator plays all three Zoho hosts.
accounts_url = {_toml(base_url)}
api_domain = {_toml(base_url)}
upload_url = {_toml(base_url + "/crm/v8/upload")}
client_id = {_toml(emulator.client_id)}
client_secret = {_toml(emulator.client_secret)}
refresh_token = {_toml(emulator.refresh_token)}
bulk_poll_interval = "1s"   # production default "5s"

[[pipelines]]
name = "orders"
table = "{orders.TABLE}"
key = "id"
flag = "sync"
module = "Orders"
unique_field = "parent_id"
mode = "realtime"
flush_size = 100
max_delay = "{options.max_delay_seconds}s"   # production default "10m"
poll_interval = "{options.poll_interval_seconds}s"   # production default "5s"

[pipelines.fields]
{fields}
"""


def _toml(text: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML)."""
    return json.dumps(text, ensure_ascii=False)
