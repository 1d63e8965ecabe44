"""Values that travel between the parts of syncd. Frozen, no I/O."""

from __future__ import annotations

import enum
import hashlib
import operator
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from itertools import repeat
from types import MappingProxyType
from typing import Any, NamedTuple, cast


class FieldType(enum.StrEnum):
    """How a legacy value is written to a CRM field."""

    TEXT = "text"
    INTEGER = "integer"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    # A multi-select picklist: a list of texts (JSON array; one CSV cell joined by ";").
    MULTISELECT = "multiselect"


ConfigValue = str | int | bool
"""A value written in the config file (a value map's result, a default for NULL)."""


@dataclass(frozen=True)
class ParentLookup:
    """A lookup field's parent: the pipeline whose identity map holds the parent's record id
    for a legacy key, and that pipeline's unique field (Bulk Write finds the parent by it)."""

    pipeline: str
    unique_field: str


@dataclass(frozen=True)
class ParentField:
    """A lookup field's parent found by a unique field of its module (``{module, field}``):
    the records API needs the parent's record id, found with the Search Records API; Bulk Write
    finds the parent itself (``find_by`` = ``field``)."""

    module: str
    field: str

    @property
    def key(self) -> str:
        """``Module.Field``: how status, logs and the per-batch parent ids name it."""
        return f"{self.module}.{self.field}"


@dataclass(frozen=True)
class FieldMap:
    """One mapped column: CRM field ``api_name`` takes legacy ``column``.

    The value options change the legacy value before its type conversion (the values the
    compare-and-set reads stay as they are): NULL becomes ``default``; a text column is cut
    at ``split`` into a multi-select's values; each value (or each multi-select value) is
    looked up in ``value_map`` by its text, and a value the map lacks is a reject; a decimal
    with more than ``decimal_places`` places is a reject.
    """

    api_name: str
    column: str
    type: FieldType | None = None  # None: derived from the legacy column type
    value_map: tuple[tuple[str, ConfigValue], ...] = ()
    default: ConfigValue | None = None
    split: str | None = None
    decimal_places: int | None = None
    # A lookup: the column holds the parent row's legacy key; the CRM field takes the parent's
    # record (found by its record id on the records API, by its unique field on Bulk Write).
    lookup: ParentLookup | None = None
    # A lookup by a unique field of the parent module (``lookup = { module, field }``): the
    # column holds that field's value. Never set together with ``lookup``.
    parent_field: ParentField | None = None

    @property
    def transforms(self) -> bool:
        """Whether any value option is set (a field without them takes the plain path)."""
        return (
            bool(self.value_map)
            or self.default is not None
            or self.split is not None
            or self.decimal_places is not None
        )


@dataclass(frozen=True)
class TableSpec:
    """What the source adapter needs to know about one pipeline's legacy table."""

    pipeline: str
    table: str  # may be "schema.table"
    key: str
    flag: str
    fields: tuple[FieldMap, ...]
    version_column: str | None = None

    @property
    def columns(self) -> list[str]:
        """The mapped columns, each once, in mapping order."""
        seen: dict[str, None] = {}
        for item in self.fields:
            seen.setdefault(item.column, None)
        return list(seen)


_NO_VALUES: Mapping[str, Any] = MappingProxyType({})
"""The values of every lean row (``PendingRow.lean``)."""


@dataclass(frozen=True, slots=True)  # slots: a batch holds 25,000 of them
class PendingRow:
    """A legacy row whose flag is false, with the mapped values exactly as read.

    ``values`` is keyed by legacy column name; the compare-and-set uses these values, so
    they must not be converted before the row is marked synced.
    """

    key: Any
    values: Mapping[str, Any]
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)
    key_text: str = field(init=False, repr=False, compare=False)
    """The legacy key as the CRM unique field holds it (made once: it is read per row often)."""
    version: int | None = field(default=None, init=False, repr=False, compare=False)
    """The version of the row the database reports, where it has one (PostgreSQL's ``xmin``:
    the transaction that wrote this row version). The compare-and-set takes an unchanged
    version as proof of unchanged content before it computes any fingerprint."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_text", str(self.key))

    @classmethod
    def fingerprinted(
        cls, key: Any, values: Mapping[str, Any], fingerprint: str, version: int | None = None
    ) -> PendingRow:
        """A row whose fingerprint the database computed as it read the row (PostgreSQL, see
        ``syncd.source.table``): ``content_hash`` is then never computed for it. ``version``:
        the row version read with it, if any."""
        # Slots set directly: the frozen dataclass __init__ (a guarded set per field, then
        # __post_init__) cost about 1 µs, paid twice per row of an initial sync.
        row = _NEW(PendingRow)
        _SET_KEY(row, key)
        _SET_VALUES(row, values)
        _SET_FINGERPRINT(row, fingerprint)
        _SET_KEY_TEXT(row, str(key))
        _SET_VERSION(row, version)
        return row

    def lean(self) -> PendingRow:
        """This row without its values, its fingerprint and version kept: what a bulk job in
        flight holds (a batch's values would otherwise stay in memory for each job running;
        promise 7). Its compare-and-set compares those. It shares this row's key text and one
        empty mapping. A copy, this row left as it is; the page writer makes its own rows lean
        in place (``make_lean``)."""
        row = PendingRow.fingerprinted(self.key, _NO_VALUES, self.fingerprint, self.version)
        _SET_KEY_TEXT(row, self.key_text)  # this row's text, shared rather than made again
        return row

    @staticmethod
    def make_lean(rows: Sequence[PendingRow]) -> None:
        """Make each of ``rows`` lean in place, as ``lean`` makes a copy: only for rows nobody
        else holds (a page writer's, once encoded). Fingerprints are made first, from the
        values; then the values go, one C-level slot set per row: a lean copy cost 0.6 µs a
        row, paid for every row of an initial sync."""
        fingerprints_of(rows)
        deque(map(_SET_VALUES, rows, repeat(_NO_VALUES)), maxlen=0)

    @property
    def fingerprint(self) -> str:
        """``content_hash(values)``, computed once: a row is fingerprinted when its file is
        journaled and again when its identity is recorded (values never change in a row).
        A row read from PostgreSQL carries the database's fingerprint (``fingerprinted``)."""
        if self._fingerprint is None:
            object.__setattr__(self, "_fingerprint", content_hash(self.values))
        assert self._fingerprint is not None
        return self._fingerprint


def fingerprints_of(rows: Iterable[PendingRow]) -> list[str]:
    """``[r.fingerprint for r in rows]``, read from the slot without a property call per row
    where every row carries its fingerprint (rows read from PostgreSQL, lean rows): a bulk
    job's 25,000 rows are fingerprinted for its manifest, its confirmation and its identities."""
    rows = list(rows)
    found = list(map(_GET_FINGERPRINT, rows))
    if None in found:
        return [r.fingerprint for r in rows]
    return cast(list[str], found)


ROW_KEY_TEXT = operator.attrgetter("key_text")
"""A row's key text, for the maps in C that select over a batch's rows (``map(ROW_KEY_TEXT,
rows)``): one getter for the engine, the CRM client and the source."""

_SLOTS = {name: PendingRow.__dict__[name].__set__ for name in PendingRow.__slots__}
_GET_FINGERPRINT = PendingRow.__dict__["_fingerprint"].__get__
_SET_KEY, _SET_VALUES = _SLOTS["key"], _SLOTS["values"]
_SET_FINGERPRINT, _SET_KEY_TEXT = _SLOTS["_fingerprint"], _SLOTS["key_text"]
_SET_VERSION = _SLOTS["version"]
_NEW = object.__new__


@dataclass(frozen=True, kw_only=True)
class Tunables:
    """How one pipeline's engine paces itself and what it may spend: built once by
    ``syncd.config`` from the settings, whose classes hold every default (none is written
    here, so a default cannot differ between the config and the engine)."""

    batch_size: int  # rows per keyset batch and per bulk file (Zoho's cap: 25,000)
    flush_size: int  # realtime: records per Upsert call
    max_delay: timedelta  # realtime: the oldest buffered change goes after this
    poll_interval: timedelta  # realtime: how often the buffer is filled
    jobs_in_flight: int  # bulk jobs running at once
    bulk_poll_interval: timedelta  # first wait before a bulk job's status is asked
    bulk_job_timeout: timedelta  # a job still running after this is left journaled
    daily_credit_budget: int  # syncd's own rolling 24 h credits
    credit_reserve: int  # org credits kept for the company's other integrations


@dataclass(frozen=True)
class CrmRecord:
    """A row converted for the Upsert API: field API name -> JSON value (unique field included)."""

    key: str
    fields: Mapping[str, object]


@dataclass(frozen=True)
class BulkColumn:
    """One column of a Bulk Write CSV; ``format`` is declared for dates and datetimes,
    ``find_by`` for a lookup (the parent module's field the cell matches)."""

    api_name: str
    format: str | None = None
    find_by: str | None = None


class BulkRow(tuple[str, ...]):
    """A row converted for a Bulk Write CSV: the legacy key first, then one cell per column.

    It is the CSV record itself (a tuple of its cells), so a file is written from these rows
    as they are: a batch of 25,000 made no record object and no second tuple per row."""

    __slots__ = ()

    def __new__(cls, key: str, cells: Sequence[str]) -> BulkRow:
        return tuple.__new__(cls, (key, *cells))

    @classmethod
    def of_columns(cls, keys: Sequence[str], columns: Sequence[Sequence[str]]) -> list[BulkRow]:
        """One row per key, its cells taken from ``columns`` (made without a Python call per
        row)."""
        return list(map(partial(tuple.__new__, cls), zip(keys, *columns, strict=True)))

    @property
    def key(self) -> str:
        return self[0]

    @property
    def cells(self) -> tuple[str, ...]:
        return self[1:]


class OutcomeKind(enum.StrEnum):
    """What Zoho did with one record."""

    ADDED = "added"
    UPDATED = "updated"
    SKIPPED = "skipped"  # Zoho refused the record; it goes to the reject list
    RETRY = "retry"  # not processed (transient); send again later


WRITTEN = frozenset({OutcomeKind.ADDED, OutcomeKind.UPDATED})
"""The kinds of outcome that wrote the record (``Outcome.confirmed``), for code that tests many
outcomes without a property call each."""


class Outcome(NamedTuple):
    """Zoho's answer for one record, matched to the legacy key (never to a position).

    A named tuple, not a dataclass: a bulk result gives 25,000 a job, and ``written_many``
    makes them without a Python call each."""

    key: str
    kind: OutcomeKind
    record_id: str | None = None
    code: str | None = None
    field: str | None = None
    message: str | None = None
    # The field Zoho matched an existing record by (upsert ``duplicate_field``, action update).
    matched_by: str | None = None
    # DUPLICATE_DATA: the record that already holds the value (``details.duplicate_record.id``).
    holder_id: str | None = None

    @property
    def confirmed(self) -> bool:
        # Identity, not ``in WRITTEN``: an enum member's hash is a Python call.
        return self.kind is OutcomeKind.ADDED or self.kind is OutcomeKind.UPDATED

    @classmethod
    def written_many(
        cls, keys: Iterable[str], kinds: Iterable[OutcomeKind], record_ids: Iterable[str | None]
    ) -> list[Outcome]:
        """``Outcome(key, kind, record_id=record_id)`` for each key, in order."""
        given = zip(keys, kinds, record_ids, strict=True)
        whole = map(operator.add, given, repeat((None,) * 5))  # code, field, ... holder_id
        return list(map(partial(tuple.__new__, cls), whole))


OUTCOME_KEY = operator.attrgetter("key")
"""An outcome's key, for the maps in C over a job's outcomes (as ``ROW_KEY_TEXT`` for rows)."""


class JobState(enum.StrEnum):
    """A bulk job as syncd's journal knows it."""

    PREPARED = "prepared"  # file built, job not created yet (safe to drop after a crash)
    SENDING = "sending"  # the create call is out: if its reply is lost, Zoho may have the job
    CREATED = "created"  # Zoho has the job: poll and apply it, never create it again
    APPLIED = "applied"  # result applied to the legacy table
    FAILED = "failed"  # Zoho failed the job or it timed out; its rows stay pending
    # The create call's reply was lost: Zoho may have created (and charged) a job syncd cannot
    # see, as it offers no way to look one up. Its rows go again: maybe paid twice, counted.
    UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class BulkFile:
    """A zipped CSV on disk, ready to upload, and the keys it carries."""

    path: str
    keys: Sequence[str]
    rows: int
    zipped_bytes: int


@dataclass(frozen=True)
class BulkJobStatus:
    """A poll of one bulk job."""

    job_id: str
    state: str  # normalised: ADDED, INPROGRESS, COMPLETED, FAILED
    download_url: str | None = None
    processed: int | None = None  # rows Zoho has processed so far; None when it does not say

    @property
    def finished(self) -> bool:
        return self.state in ("COMPLETED", "FAILED")


class Api(enum.StrEnum):
    RECORDS = "records"  # the records API: insert, or update by record id
    BULK = "bulk"


@dataclass(frozen=True)
class Plan:
    """How the planner sends a backlog, and what it costs."""

    api: Api
    rows: int
    calls: int
    credits: int
    reason: str


@dataclass(frozen=True)
class Reject:
    """A row Zoho refused, kept visible with its reason until its content changes."""

    pipeline: str
    key: str
    code: str
    field: str | None
    message: str | None
    content_hash: str
    rejected_at: datetime
    attempts: int = 1


class Identity(NamedTuple):
    """The CRM record a legacy key owns, and what was last confirmed there (if anything).

    A named tuple, not a dataclass: an initial sync makes one per confirmed row, and a tuple is
    made in a third of the time (0.2 µs against 0.6 µs for a frozen dataclass set at once)."""

    key: str
    record_id: str
    seen_at: datetime
    confirmed_at: datetime | None = None
    content_hash: str | None = None

    @classmethod
    def many(
        cls,
        keys: Iterable[str],
        record_ids: Iterable[str],
        seen_at: datetime,
        confirmed_at: datetime | None,
        content_hashes: Iterable[str | None],
    ) -> list[Identity]:
        """One identity per key, all seen (and confirmed) at the same time: made through
        ``map``, not a call of the generated ``__new__`` per key."""
        given = zip(keys, record_ids, repeat(seen_at), repeat(confirmed_at), content_hashes)
        return list(map(partial(tuple.__new__, cls), given))


@dataclass(frozen=True)
class Backoff:
    """Consecutive failures of one kind of work, and when it may be tried again."""

    failures: int
    next_at: datetime
    last_error: str | None = None

    def blocks(self, now: datetime) -> bool:
        return now < self.next_at


@dataclass(frozen=True)
class RunCounts:
    sent: int = 0
    confirmed: int = 0
    rejected: int = 0
    retried: int = 0
    stale: int = 0  # confirmed by Zoho but changed meanwhile: stays pending
    credits: int = 0
    takeovers: int = 0  # rows that overwrote another row's CRM record (repaired)
    collisions: int = 0  # rows Zoho refused because a unique value is on another record

    def __add__(self, other: RunCounts) -> RunCounts:
        return RunCounts(
            sent=self.sent + other.sent,
            confirmed=self.confirmed + other.confirmed,
            rejected=self.rejected + other.rejected,
            retried=self.retried + other.retried,
            stale=self.stale + other.stale,
            credits=self.credits + other.credits,
            takeovers=self.takeovers + other.takeovers,
            collisions=self.collisions + other.collisions,
        )


RECORD_GONE_CODE = "RECORD_NOT_FOUND"
"""Outcome code of an update by id whose record no longer exists in the CRM (deleted there)."""

DELETED = "<deleted>"
"""Stands for the columns of a row that was deleted while it was in flight."""

CHANGED = "<content>"
"""Stands for the columns of a changed row that was sent without its values kept (a bulk
job's row, ``PendingRow.lean``): its fingerprint differs, no column is named."""


@dataclass(frozen=True)
class Confirmation:
    """What the compare-and-set did with rows Zoho confirmed.

    ``changed`` maps each key that no longer holds what was sent to the columns that differ
    (empty when the row is gone); ``unflagged`` are keys whose content matched and whose flag
    was set, yet read false again in the same transaction (a legacy trigger resets it).
    """

    marked: frozenset[str]
    changed: Mapping[str, tuple[str, ...]]
    unflagged: frozenset[str] = frozenset()
    flag_column: str = ""

    def columns(self, key: str) -> tuple[str, ...]:
        """The columns that kept ``key`` from being confirmed."""
        return (self.flag_column,) if key in self.unflagged else self.changed.get(key, ())

    @property
    def stale(self) -> int:
        return len(self.changed) + len(self.unflagged)

    @classmethod
    def joined(cls, parts: Iterable[Confirmation], flag_column: str) -> Confirmation:
        """One confirmation of several parts' (chunks confirmed one transaction each)."""
        marked: set[str] = set()
        changed: dict[str, tuple[str, ...]] = {}
        unflagged: set[str] = set()
        for part in parts:
            marked |= part.marked
            changed.update(part.changed)
            unflagged |= part.unflagged
        return cls(frozenset(marked), changed, frozenset(unflagged), flag_column)


def content_hash(values: Mapping[str, Any]) -> str:
    """A stable fingerprint of a row's mapped values, exactly as the driver returned them.

    The one comparison of promise 1: what was sent and what the row holds now are both read by
    ``syncd.source`` with the same driver and fingerprinted here, so an unchanged row always
    hashes the same and a changed one never does. ``repr`` carries the type with the value
    (``1``, ``'1'``, ``Decimal('1')`` and ``1.0`` all differ) and is exact for floats.
    """
    canonical = repr(sorted(values.items()))
    return hashlib.blake2b(canonical.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


@dataclass(frozen=True)
class DeleteOutcome:
    """Zoho's answer to deleting one record by id (Delete Records API)."""

    record_id: str
    gone: bool  # the record no longer exists: deleted now, or already before
    retry: bool = False  # not deleted, for a reason that passes (a lock, a limit)
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class PendingDelete:
    """A legacy row gone from its table whose CRM record is still to be deleted (or marked)."""

    key: str
    record_id: str
    found_at: datetime
    approved_at: datetime | None = None  # by `syncd deletes approve`, past the breaker
    attempts: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class ScanPosition:
    """Where the reconcile scan of the identity map has got to."""

    after_key: str | None = None  # None: the next chunk starts a pass from the first key
    pass_started_at: datetime | None = None
    last_pass_at: datetime | None = None  # when the last full pass ended
