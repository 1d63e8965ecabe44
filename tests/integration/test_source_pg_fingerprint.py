"""PostgreSQL fingerprints rows as it reads them and compares them itself at confirmation.

The table is made by plain DDL and written by psycopg, as a legacy application would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, event

from syncd.model import (
    CHANGED,
    DELETED,
    Confirmation,
    FieldMap,
    PendingRow,
    TableSpec,
    content_hash,
)
from syncd.source.table import LegacyTable, open_source_engine
from tests.helpers.native import NativeDatabase, native

DDL = (
    "CREATE TABLE awkward (id bigint PRIMARY KEY, amount numeric, ratio float8, at timestamptz,"
    " doc json, docb jsonb, blob bytea, note text, sync boolean NOT NULL DEFAULT false)"
)
COLUMNS = ("amount", "ratio", "at", "doc", "docb", "blob", "note")
FIELDS = tuple(FieldMap(c.title(), c) for c in COLUMNS)
ROWS = [
    (1, "1.10", 0.1, "2024-03-31 01:30:00.123456+02", '{"a": 1, "a": 2}', '{"b": 1, "a": [1.0]}',
     b"\x00\xff,\"\\", ""),
    (2, "1.100", -0.0, "2024-10-27 02:30:00+01", "[]", "{}", b"", None),
    (3, "NaN", float("nan"), "infinity", "null", "null", None, 'a,"b"\\c\n(d) '),
    (4, "-0.000001", 0.30000000000000004, "1999-12-31 23:59:59.999999-12", '"x"', '"é"',
     b"\x01", "NULL"),
    (5, None, None, None, None, None, None, "line\r\nbreak\ttab"),
    (6, "12345678901234567890.0000000001", 1e308, "0044-03-15 12:00:00+00 BC", "1", "1.0",
     b"\\x00", "ünïcødé 😀"),
]  # fmt: skip
CHANGES = {  # each changes one column a little; each row must then stay pending
    1: "UPDATE awkward SET note = NULL WHERE id = 1",  # '' -> NULL
    2: "UPDATE awkward SET amount = 1.1 WHERE id = 2",  # trailing zeros dropped
    3: "UPDATE awkward SET ratio = 0 WHERE id = 3",
    4: "UPDATE awkward SET ratio = 0.3 WHERE id = 4",  # the next float down
    5: "UPDATE awkward SET blob = '' WHERE id = 5",  # NULL -> empty
    6: "UPDATE awkward SET at = at + interval '1 microsecond' WHERE id = 6",
    7: 'UPDATE awkward SET docb = \'{"a": [1.00], "b": 1}\' WHERE id = 7',  # 1.0 -> 1.00
    8: "UPDATE awkward SET doc = '[ ]' WHERE id = 8",  # json keeps its text, spaces too
}
ODD_SESSION = (
    "-c TimeZone=Asia/Kathmandu -c DateStyle=German -c extra_float_digits=0"
    " -c bytea_output=escape -c IntervalStyle=sql_standard"
)


def _filled(db: NativeDatabase, copies: int = 1) -> None:
    db.execute(DDL)
    db.executemany(
        "INSERT INTO awkward (id, amount, ratio, at, doc, docb, blob, note)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        [(row[0] + 6 * n, *row[1:]) for n in range(copies) for row in ROWS],
    )


def _table(engine: Engine) -> LegacyTable:
    return LegacyTable(engine, TableSpec("awkward", "awkward", "id", "sync", FIELDS))


def _flagged(db: NativeDatabase) -> set[int]:
    return {int(k) for (k,) in db.query("SELECT id FROM awkward WHERE sync")}


def _read_change_confirm(
    pg_url: str,
    db: NativeDatabase,
    changes: Sequence[str],
    table: Callable[[Engine], LegacyTable] = _table,
) -> tuple[list[PendingRow], Confirmation]:
    """Read every pending row as a bulk job keeps it (lean), run ``changes`` through the
    legacy client, then confirm what was read."""
    engine = open_source_engine(pg_url)
    try:
        source = table(engine)
        sent = [r.lean() for r in source.pending_batch(None, 100)]
        for sql in changes:
            db.execute(sql)
        return sent, source.mark_synced(sent)
    finally:
        engine.dispose()


def test_unchanged_rows_of_awkward_types_are_flagged_even_across_odd_sessions(pg_url: str) -> None:
    """Rows read in one session are confirmed by another whose defaults differ (time zone,
    date style, float digits, bytea output); the fingerprint is the database's, not Python's."""
    odd_url = f"{pg_url}{'&' if '?' in pg_url else '?'}options={quote(ODD_SESSION)}"
    with native(pg_url) as db:
        _filled(db)
        reader, confirmer = open_source_engine(pg_url), open_source_engine(odd_url)
        try:
            rows = _table(reader).pending_batch(None, 100)
            assert all(r.fingerprint != content_hash(r.values) for r in rows)
            again = {
                r.key: r.fingerprint for r in _table(confirmer).fetch_rows([r.key for r in rows])
            }
            confirmation = _table(confirmer).mark_synced([r.lean() for r in rows])
        finally:
            reader.dispose()
            confirmer.dispose()
        assert again == {r.key: r.fingerprint for r in rows}
        assert confirmation.marked == {str(r[0]) for r in ROWS}
        assert confirmation.changed == {}
        assert _flagged(db) == {r[0] for r in ROWS}


def test_rows_changed_or_deleted_after_the_read_stay_pending(pg_url: str) -> None:
    """A one-column change of any kind, made by psycopg between the read and the confirmation,
    keeps the row pending and is reported changed; a deleted row is reported deleted."""
    with native(pg_url) as db:
        _filled(db, copies=2)
        changes = [*CHANGES.values(), "DELETE FROM awkward WHERE id = 9"]
        _, confirmation = _read_change_confirm(pg_url, db, changes)
        changed = {str(k): (CHANGED,) for k in CHANGES}
        assert confirmation.changed == {**changed, "9": (DELETED,)}
        assert confirmation.marked == {"10", "11", "12"}
        assert _flagged(db) == {10, 11, 12}


KEEP_PENDING = (
    "CREATE FUNCTION keep_pending() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN IF NEW.id = 3 THEN NEW.sync := false; END IF; RETURN NEW; END $$"
)
RESETTERS = {
    # a BEFORE trigger on the table itself, the usual legacy "touched rows are pending again"
    "trigger": [
        KEEP_PENDING,
        "CREATE TRIGGER keep_pending BEFORE UPDATE ON awkward"
        " FOR EACH ROW EXECUTE FUNCTION keep_pending()",
    ],
    # an AFTER trigger writing the row again: the UPDATE's own RETURNING cannot see it
    "after trigger": [
        "CREATE FUNCTION unsync() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " UPDATE awkward SET sync = false WHERE id = 3 AND sync; RETURN NULL; END $$",
        "CREATE TRIGGER unsync AFTER UPDATE ON awkward FOR EACH ROW EXECUTE FUNCTION unsync()",
    ],
    # a view's UPDATE reaches its table, whose trigger the view does not show
    "view over a table with a trigger": [
        KEEP_PENDING,
        "ALTER TABLE awkward RENAME TO awkward_base",
        "CREATE TRIGGER keep_pending BEFORE UPDATE ON awkward_base"
        " FOR EACH ROW EXECUTE FUNCTION keep_pending()",
        "CREATE VIEW awkward AS SELECT * FROM awkward_base",
    ],
    # a partitioned table's partition may have a trigger its parent does not
    "trigger on a partition": [
        KEEP_PENDING,
        "ALTER TABLE awkward RENAME TO awkward_old",
        DDL.replace("PRIMARY KEY,", ",") + " PARTITION BY RANGE (id)",
        "CREATE TABLE awkward_low PARTITION OF awkward FOR VALUES FROM (0) TO (4)",
        "CREATE TABLE awkward_high PARTITION OF awkward FOR VALUES FROM (4) TO (99)",
        "INSERT INTO awkward SELECT * FROM awkward_old",
        "CREATE TRIGGER keep_pending BEFORE UPDATE ON awkward_low"
        " FOR EACH ROW EXECUTE FUNCTION keep_pending()",
    ],
}


@pytest.mark.parametrize("resetter", RESETTERS)
def test_a_flag_reset_by_a_legacy_trigger_is_reported_not_marked(
    pg_url: str, resetter: str
) -> None:
    """A row whose flag a legacy trigger sets false again in the confirming UPDATE is reported
    unflagged, not marked: the flag is read back wherever something may reset it."""
    with native(pg_url) as db:
        _filled(db)
        for sql in RESETTERS[resetter]:
            db.execute(sql)
        engine = open_source_engine(pg_url)
        try:
            table = _table(engine)
            confirmation = table.mark_synced([r.lean() for r in table.pending_batch(None, 100)])
        finally:
            engine.dispose()
        assert confirmation.unflagged == {"3"}
        assert confirmation.marked == {str(r[0]) for r in ROWS} - {"3"}
        assert {int(k) for (k,) in db.query("SELECT id FROM awkward WHERE sync")} == {
            r[0] for r in ROWS
        } - {3}


def test_the_flag_is_not_read_back_where_nothing_can_reset_it(pg_url: str) -> None:
    """A plain table whose only triggers are a foreign key's: the confirming transaction
    flags the rows and asks the catalog, nothing more (the read-back cost PostgreSQL up to
    2.5 s per 1,000,000 rows). The rows are confirmed all the same."""
    with native(pg_url) as db:
        _filled(db)
        db.execute("CREATE TABLE awkward_note (id bigint REFERENCES awkward (id))")
        engine = open_source_engine(pg_url)
        statements: list[str] = []
        event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        try:
            table = _table(engine)
            sent = [r.lean() for r in table.pending_batch(None, 100)]
            statements.clear()
            confirmation = table.mark_synced(sent)
        finally:
            engine.dispose()
        assert len(statements) == 2, statements  # the flagging UPDATE, the catalog
        assert statements[0].lstrip().startswith("UPDATE awkward SET sync=true")
        assert confirmation.marked == {str(r[0]) for r in ROWS}
        assert _flagged(db) == {r[0] for r in ROWS}


def test_a_writer_committing_while_the_confirmation_waits_for_its_lock_wins(pg_url: str) -> None:
    """The confirmation's UPDATE waits for a writer's row lock, then re-checks the writer's
    new content: the row stays pending and is reported changed."""
    with native(pg_url) as db, native(pg_url) as writer:
        _filled(db)
        engine = open_source_engine(pg_url)
        try:
            table = _table(engine)
            sent = [r.lean() for r in table.pending_batch(None, 100)]
            writer.conn.execute("UPDATE awkward SET note = 'late' WHERE id = 2")  # not committed
            result: list[object] = []
            thread = threading.Thread(target=lambda: result.append(table.mark_synced(sent)))
            thread.start()
            _wait_for_a_lock_wait(db)
            writer.conn.commit()
            thread.join(30)
        finally:
            engine.dispose()
        confirmation = result[0]
        assert getattr(confirmation, "changed", None) == {"2": (CHANGED,)}
        assert _flagged(db) == {r[0] for r in ROWS} - {2}


def _wait_for_a_lock_wait(db: NativeDatabase) -> None:
    for _ in range(200):
        waiting = db.query(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()"
        )
        if waiting[0][0]:
            return
        time.sleep(0.05)
    raise AssertionError("the confirmation never waited for the writer's lock")


def test_a_value_moving_across_a_column_boundary_is_a_change(pg_url: str) -> None:
    """('x,y', 'z') becoming ('x', 'y,z') or ('x,y', NULL) becoming ('x,y', '') changes the
    row: the fingerprint keeps the columns apart (a joined text would not)."""
    fields = (FieldMap("A", "a"), FieldMap("B", "b"))
    with native(pg_url) as db:
        db.execute("CREATE TABLE pair (id int PRIMARY KEY, a text, b text, sync boolean)")
        db.executemany(
            "INSERT INTO pair VALUES (%s, %s, %s, false)", [(1, "x,y", "z"), (2, "x,y", None)]
        )
        changes = [
            "UPDATE pair SET a = 'x', b = 'y,z' WHERE id = 1",
            "UPDATE pair SET b = '' WHERE id = 2",
        ]
        _, confirmation = _read_change_confirm(
            pg_url,
            db,
            changes,
            lambda engine: LegacyTable(engine, TableSpec("pair", "pair", "id", "sync", fields)),
        )
        assert confirmation.marked == set()
        assert confirmation.changed == {"1": (CHANGED,), "2": (CHANGED,)}


def test_a_row_rewritten_with_what_it_held_is_still_confirmed(pg_url: str) -> None:
    """An UPDATE that writes the values a row already held gives the row a new version, but
    the content sent is still there: the fingerprint confirms it. A changed row stays pending."""
    with native(pg_url) as db:
        _filled(db)
        changes = [
            "UPDATE awkward SET note = note, amount = amount WHERE id <= 3",
            "UPDATE awkward SET note = 'late' WHERE id = 4",
        ]
        sent, confirmation = _read_change_confirm(pg_url, db, changes)
        assert all(r.version is not None for r in sent)
        assert confirmation.changed == {"4": (CHANGED,)}
        assert _flagged(db) == {r[0] for r in ROWS} - {4}


def test_an_unchanged_row_version_confirms_without_the_fingerprint(pg_url: str) -> None:
    """A row whose version (xmin) is the one read holds what was read: the fingerprint is not
    compared. Shown with fingerprints made wrong on purpose: rows not written since the read
    are flagged; a row rewritten with its own values (a new version) is then compared by
    fingerprint, which no longer matches, and stays pending."""
    with native(pg_url) as db:
        _filled(db)
        engine = open_source_engine(pg_url)
        try:
            table = _table(engine)
            read = table.pending_batch(None, 100)
            wrong = [PendingRow.fingerprinted(r.key, {}, "0" * 32, r.version) for r in read]
            db.execute("UPDATE awkward SET note = note WHERE id = 2")
            confirmation = table.mark_synced(wrong)
        finally:
            engine.dispose()
        assert confirmation.changed == {"2": (CHANGED,)}
        assert _flagged(db) == {r[0] for r in ROWS} - {2}


def test_rows_written_by_one_transaction_share_one_version_object(pg_url: str) -> None:
    """The rows _filled inserts in one statement carry one xmin: a part's rows hold it as one
    object, not one int each (a job in flight keeps every row's version). A row written
    later has its own."""
    with native(pg_url) as db:
        _filled(db, copies=3)
        db.execute("UPDATE awkward SET note = 'later' WHERE id = 5")
        engine = open_source_engine(pg_url)
        try:
            rows = _table(engine).pending_batch(None, 100)
        finally:
            engine.dispose()
    loaded = [r for r in rows if r.key != 5]
    assert len({id(r.version) for r in loaded}) == 1
    assert {r.version for r in rows if r.key == 5}.isdisjoint({loaded[0].version})


@pytest.mark.parametrize("kind", ["view", "partitioned table"])
def test_row_versions_are_read_from_tables_only(pg_url: str, kind: str) -> None:
    """A partitioned table's rows carry their version; a view's carry none (it has no xmin)
    and are confirmed by fingerprint alone."""
    with native(pg_url) as db:
        if kind == "view":
            _filled(db)
            db.execute("ALTER TABLE awkward RENAME TO awkward_base")
            db.execute("CREATE VIEW awkward AS SELECT * FROM awkward_base")
        else:
            db.execute(DDL.replace("PRIMARY KEY,", ",") + " PARTITION BY RANGE (id)")
            db.execute("CREATE TABLE awkward_low PARTITION OF awkward FOR VALUES FROM (0) TO (4)")
            db.execute("CREATE TABLE awkward_high PARTITION OF awkward FOR VALUES FROM (4) TO (99)")
            db.execute("CREATE UNIQUE INDEX ON awkward (id)")
            db.executemany(
                "INSERT INTO awkward (id, amount, ratio, at, doc, docb, blob, note)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                ROWS,
            )
        written = "awkward_base" if kind == "view" else "awkward"
        changes = [f"UPDATE {written} SET note = 'x' WHERE id = 5"]
        sent, confirmation = _read_change_confirm(pg_url, db, changes)
        versions = {r.version is None for r in sent}
        assert versions == {kind == "view"}
        assert confirmation.changed == {"5": (CHANGED,)}
        assert confirmation.marked == {str(r[0]) for r in ROWS} - {"5"}
