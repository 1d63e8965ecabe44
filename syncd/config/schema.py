"""The shape of the config file as pydantic models, and how each becomes its settings dataclass.

The models mirror the TOML (same key names, strict types, unknown keys forbidden); checks that
involve two keys are field validators reading the keys validated before them (``info.data``), so
each problem is reported at its own key. Keys with a default are ``None`` here when left out:
the dataclasses in ``settings.py`` hold the defaults, and "left out" stays distinguishable for
the mode checks.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    ValidationInfo,
    field_validator,
)

from syncd.config.durations import Schedule
from syncd.config.presets import CUSTOM_DATA_CENTER, DATA_CENTERS, Hosts
from syncd.config.settings import (
    CONDITIONS,
    CrmOnlySettings,
    CrmSettings,
    LogSettings,
    MetricsSettings,
    Mode,
    NotifyTarget,
    NotifyThresholds,
    OnDelete,
    PipelineSettings,
    Secret,
    Settings,
    SourceSettings,
    StateSettings,
    default_state_url,
)
from syncd.config.values import (
    ApiName,
    Column,
    DatabaseUrl,
    Duration,
    HttpUrl,
    OrgId,
    ScheduleValue,
    SecretValue,
    SourceUrl,
    TableName,
    Text,
    Zone,
    broken_rule,
    check_api_name,
    check_pipeline_name,
    choice,
    given,
    int_between,
    invalid,
    one_of,
)
from syncd.model import ConfigValue, FieldMap, FieldType, ParentField, ParentLookup

# Keys that may hold a credential: each may instead be read from "<key>_file", and their values
# are never quoted back in a message.
SECRET_KEYS: dict[str, tuple[str, ...]] = {
    "source": ("url",),
    "state": ("url",),
    "crm": ("client_id", "client_secret", "refresh_token"),
    "notify": ("url",),  # an array of tables: each [[notify]] may use url_file
}
PIPELINE_NAMES = "pipeline_names"  # validation context: Counter of the names in the file


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, hide_input_in_errors=True)


class _Source(_Model):
    url: SourceUrl
    timezone: Zone | None = None

    def build(self) -> SourceSettings:
        return SourceSettings(**given(url=self.url, timezone=self.timezone))


class _State(_Model):
    url: DatabaseUrl | None = None

    def build(self) -> StateSettings:
        return StateSettings(url=self.url or default_state_url())


_data_center_choice = choice(DATA_CENTERS)


def _reserve(value: object) -> int | str:
    """Credits kept for the org's other integrations: a number, or "N%" of org_daily_credits."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    text = value.strip() if isinstance(value, str) else ""
    if text.endswith("%") and text[:-1].isdigit() and int(text[:-1]) <= 90:
        return text
    raise invalid(
        'must be a number of credits (0 or more) or a percentage such as "10%" (at most 90%)'
    )


def _data_center(value: object, info: ValidationInfo) -> str:
    if value is not None:
        return _data_center_choice(value)
    hosts = [info.data.get(name) for name in ("accounts_url", "api_domain", "upload_url")]
    if all(hosts):
        return CUSTOM_DATA_CENTER
    raise broken_rule(
        "is required unless accounts_url, api_domain and upload_url are all set: "
        "one of " + ", ".join(DATA_CENTERS)
    )


class _Crm(_Model):
    accounts_url: HttpUrl | None = None
    api_domain: HttpUrl | None = None
    upload_url: HttpUrl | None = None
    data_center: Annotated[str, PlainValidator(_data_center)] = Field(
        default=None, validate_default=True
    )
    org_id: OrgId | None = None
    client_id: SecretValue
    client_secret: SecretValue
    refresh_token: SecretValue
    daily_credit_budget: Annotated[int | None, int_between(1)] = None
    max_concurrency: Annotated[int | None, int_between(1, 25)] = None
    request_timeout: Duration | None = None
    bulk_poll_interval: Duration | None = None
    bulk_job_timeout: Duration | None = None
    trigger: list[Annotated[str, one_of(["workflow", "approval", "blueprint"])]] | None = None
    bulk_jobs_in_flight: Annotated[int | None, int_between(1, 5)] = None
    org_daily_credits: Annotated[int | None, int_between(1)] = None
    credit_reserve: Annotated[int | str | None, PlainValidator(_reserve)] = None

    @field_validator("credit_reserve")
    @classmethod
    def _percent_needs_org_credits(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str) and info.data.get("org_daily_credits") is None:
            raise broken_rule(
                "a percentage is of the org's daily credits: set crm.org_daily_credits too "
                "(Setup > Developer Hub > APIs and SDKs > API Dashboard shows it)"
            )
        return value

    def _reserve_credits(self) -> int | None:
        if isinstance(self.credit_reserve, str):
            assert self.org_daily_credits is not None  # checked above
            return self.org_daily_credits * int(self.credit_reserve.rstrip("%")) // 100
        return self.credit_reserve

    def build(self) -> CrmSettings:
        # without a preset (data_center "custom") every host is set, so none falls back to ""
        preset = DATA_CENTERS.get(self.data_center, Hosts("", "", ""))
        trigger = tuple(dict.fromkeys(self.trigger)) if self.trigger is not None else None
        return CrmSettings(
            data_center=self.data_center,
            accounts_url=self.accounts_url or preset.accounts_url,
            api_domain=self.api_domain or preset.api_domain,
            upload_url=self.upload_url or preset.upload_url,
            org_id=self.org_id,
            client_id=self.client_id,
            client_secret=self.client_secret,
            refresh_token=self.refresh_token,
            **given(
                daily_credit_budget=self.daily_credit_budget,
                max_concurrency=self.max_concurrency,
                request_timeout=self.request_timeout,
                bulk_poll_interval=self.bulk_poll_interval,
                bulk_job_timeout=self.bulk_job_timeout,
                trigger=trigger,
                bulk_jobs_in_flight=self.bulk_jobs_in_flight,
                credit_reserve=self._reserve_credits(),
                org_daily_credits=self.org_daily_credits,
            ),
        )


def _config_value(value: object) -> ConfigValue:
    if isinstance(value, str | int | bool):
        return value
    raise invalid("must be a text, an integer or true/false")


def _separator(value: object) -> str:
    if isinstance(value, str) and 0 < len(value) <= 5 and not value.isspace():
        return value
    raise invalid('must be a separator of 1 to 5 characters, such as ";" or ","')


def _parent_pipeline(value: object, info: ValidationInfo) -> str:
    """A lookup names another [[pipelines]] of this file: the parent's identity map."""
    if not isinstance(value, str):
        raise invalid(
            'must be the name of another [[pipelines]] or a table { module = "...", field = "..." }'
        )
    name = check_pipeline_name(value)
    names: Counter[str] | None = (info.context or {}).get(PIPELINE_NAMES)
    if names is not None and not names[name]:
        known = ", ".join(sorted(names)) or "none"
        raise broken_rule(
            f'names pipeline "{name}", which this file does not have (pipelines: {known}); '
            "a lookup names the [[pipelines]] that syncs the parent records"
        )
    return name


ConfigValueSpec = Annotated[ConfigValue, PlainValidator(_config_value)]


class _ModuleLookup(_Model):
    """``lookup = { module = "Accounts", field = "Account_Number" }``: the parent is the record
    of ``module`` whose unique ``field`` holds the column's value."""

    module: ApiName
    field: ApiName


LOOKUP_TAGS = ("[pipeline]", "[table]")
"""The two forms of ``lookup`` (pydantic puts the form's tag in an error's loc; not a key)."""


def _lookup_form(value: Any) -> str:
    return LOOKUP_TAGS[1] if isinstance(value, dict) else LOOKUP_TAGS[0]


LookupSpec = Annotated[
    Annotated[str, PlainValidator(_parent_pipeline), Tag(LOOKUP_TAGS[0])]
    | Annotated[_ModuleLookup, Tag(LOOKUP_TAGS[1])],
    Discriminator(_lookup_form),
]


class _Field(_Model):
    column: Column
    type: Annotated[str | None, one_of(FieldType)] = None
    map: dict[Text, ConfigValueSpec] | None = Field(default=None, min_length=1)
    default: ConfigValueSpec | None = None
    split: Annotated[str | None, PlainValidator(_separator)] = None
    decimal_places: Annotated[int | None, int_between(0, 9)] = None
    lookup: LookupSpec | None = None

    @field_validator("lookup")
    @classmethod
    def _lookup_alone(
        cls, value: str | _ModuleLookup | None, info: ValidationInfo
    ) -> str | _ModuleLookup | None:
        options = ("type", "map", "default", "split", "decimal_places")
        if value is not None and any(info.data.get(name) is not None for name in options):
            raise broken_rule(
                "sends the parent's record, not a value: use it without type, map, default, "
                "split and decimal_places"
            )
        return value

    @field_validator("split")
    @classmethod
    def _split_is_multiselect(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("type") not in (None, FieldType.MULTISELECT):
            raise broken_rule(
                'cuts a text into the values of a multi-select: use it with type = "multiselect"'
                " or without a type"
            )
        return value

    @field_validator("decimal_places")
    @classmethod
    def _places_of_numbers(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("type") not in (None, FieldType.DECIMAL):
            raise broken_rule('is for numbers: use it with type = "decimal" or without a type')
        return value

    def field_map(self, api_name: str, unique_fields: Mapping[str, str]) -> FieldMap:
        """``unique_fields``: each pipeline's unique field, by pipeline name (for a lookup)."""
        ftype = FieldType(self.type) if self.type else None
        if ftype is None and self.split is not None:
            ftype = FieldType.MULTISELECT  # split makes the values of a multi-select
        return FieldMap(
            api_name,
            self.column,
            ftype,
            value_map=tuple((self.map or {}).items()),
            default=self.default,
            split=self.split,
            decimal_places=self.decimal_places,
            lookup=(
                ParentLookup(self.lookup, unique_fields[self.lookup])
                if isinstance(self.lookup, str)
                else None
            ),
            parent_field=(
                ParentField(self.lookup.module, self.lookup.field)
                if isinstance(self.lookup, _ModuleLookup)
                else None
            ),
        )


def _pipeline_name(value: object, info: ValidationInfo) -> str:
    name = check_pipeline_name(value)
    names: Counter[str] = (info.context or {}).get(PIPELINE_NAMES, Counter())
    if names[name] > 1:
        raise broken_rule(f'must be unique, but {names[name]} pipelines are named "{name}"')
    return name


def _field_name(value: object, info: ValidationInfo) -> str:
    name = check_api_name(value)
    if name.casefold() == str(info.data.get("unique_field", "")).casefold():
        raise broken_rule(
            "is the unique_field: syncd writes the legacy key there itself, "
            "so it must not be mapped to a column"
        )
    return name


def _field_spec(value: object, info: ValidationInfo) -> object:
    """A bare column name is short for { column = "..." }; the flag column cannot be sent."""
    if isinstance(value, str):
        value = {"column": value}
    if not isinstance(value, dict):
        raise invalid(
            'must be a column name or a table like { column = "ordered_at", type = "date" }'
        )
    if value.get("column") is not None and value.get("column") == info.data.get("flag"):
        raise broken_rule(
            f'maps the flag column "{value["column"]}", which syncd sets itself after a '
            "confirmed write; map another column"
        )
    return value


FieldName = Annotated[str, PlainValidator(_field_name)]
FieldSpec = Annotated[_Field, BeforeValidator(_field_spec)]


class _Pipeline(_Model):
    name: Annotated[str, PlainValidator(_pipeline_name)]
    table: TableName
    key: Column
    flag: Column
    module: ApiName
    unique_field: ApiName
    mode: Annotated[Mode | None, one_of(["realtime", "interval"])] = None  # None: realtime
    flush_size: Annotated[int | None, int_between(1, 100)] = None
    max_delay: Duration | None = None
    poll_interval: Duration | None = None
    schedule: ScheduleValue = Field(default=None, validate_default=True)
    # a Bulk Write CSV holds at most 200 columns, and the key takes one of them
    fields: dict[FieldName, FieldSpec] = Field(min_length=1, max_length=199)
    version_column: Column | None = None
    batch_size: Annotated[int | None, int_between(1, 25000)] = None
    on_delete: Annotated[OnDelete | None, one_of(["keep", "delete", "mark"])] = None
    mark_field: ApiName | None = Field(default=None, validate_default=True)
    max_deletes: Annotated[int | None, int_between(1)] = None
    delete_scan_interval: Duration | None = None
    tombstone_table: TableName | None = None

    @field_validator("mark_field")
    @classmethod
    def _mark_needs_field(cls, value: str | None, info: ValidationInfo) -> str | None:
        marking = info.data.get("on_delete") == "mark"
        if marking and value is None:
            raise broken_rule(
                'is required with on_delete = "mark": the CRM field (a checkbox) set to true'
            )
        if value is not None and not marking:
            raise broken_rule('is only used with on_delete = "mark"')
        return value

    @field_validator("max_deletes", "delete_scan_interval", "tombstone_table")
    @classmethod
    def _deletes_only(cls, value: object, info: ValidationInfo) -> object:
        if value is not None and info.data.get("on_delete") in (None, "keep"):
            raise broken_rule('is only used with on_delete = "delete" or "mark"')
        return value

    @field_validator("fields")
    @classmethod
    def _lookups_elsewhere(
        cls, value: dict[str, _Field], info: ValidationInfo
    ) -> dict[str, _Field]:
        own = info.data.get("name")
        for api_name, spec in value.items():
            if own is not None and spec.lookup == own:
                raise broken_rule(
                    f'{api_name}.lookup names this pipeline itself ("{own}"): a lookup names '
                    "another pipeline, the one that syncs the parent records"
                )
        return value

    @field_validator("flag")
    @classmethod
    def _flag_is_not_the_key(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("key"):
            raise broken_rule("must be a different column from key")
        return value

    @field_validator("flush_size", "max_delay", "poll_interval")
    @classmethod
    def _realtime_only(cls, value: object, info: ValidationInfo) -> object:
        if info.data.get("mode") == "interval":
            raise broken_rule('is only used in realtime mode (this pipeline has mode = "interval")')
        return value

    @field_validator("schedule")
    @classmethod
    def _interval_only(cls, value: Schedule | None, info: ValidationInfo) -> Schedule | None:
        mode = info.data.get("mode")
        if mode == "interval" and value is None:
            raise broken_rule(
                'is required in interval mode: "every <duration>" or a cron expression'
            )
        if mode == "realtime" and value is not None:
            raise broken_rule('is only used in interval mode (this pipeline has mode = "realtime")')
        if mode is None and value is not None and "mode" in info.data:  # left out, not invalid
            raise broken_rule(
                'is only used in interval mode: set mode = "interval" (the default is realtime)'
            )
        return value

    def build(self, unique_fields: Mapping[str, str]) -> PipelineSettings:
        fields = tuple(
            spec.field_map(api_name, unique_fields) for api_name, spec in self.fields.items()
        )
        return PipelineSettings(
            name=self.name,
            table=self.table,
            key=self.key,
            flag=self.flag,
            module=self.module,
            unique_field=self.unique_field,
            fields=fields,
            **given(
                mode=self.mode,
                flush_size=self.flush_size,
                max_delay=self.max_delay,
                poll_interval=self.poll_interval,
                schedule=self.schedule,
                version_column=self.version_column,
                batch_size=self.batch_size,
                on_delete=self.on_delete,
                mark_field=self.mark_field,
                max_deletes=self.max_deletes,
                delete_scan_interval=self.delete_scan_interval,
                tombstone_table=self.tombstone_table,
            ),
        )


class _Metrics(_Model):
    enabled: bool | None = None
    host: Text | None = None
    port: Annotated[int | None, int_between(1, 65535)] = None

    def build(self) -> MetricsSettings:
        return MetricsSettings(**given(enabled=self.enabled, host=self.host, port=self.port))


class _Log(_Model):
    level: Annotated[str | None, one_of(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])] = None
    format: Annotated[str | None, one_of(["auto", "text", "json"])] = None

    def build(self) -> LogSettings:
        return LogSettings(**given(level=self.level, format=self.format))


def _webhook_url(value: object) -> Secret:
    """An http(s) URL, kept as a Secret; never quoted back (a Slack URL is a credential)."""
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s/?#]+(/\S*)?", value):
        raise broken_rule('must be an http(s) URL like "https://hooks.slack.com/services/..."')
    return Secret(value)


class _NotifyThresholds(_Model):
    not_sending_after: Duration | None = None
    budget_percent: Annotated[int | None, int_between(1, 100)] = None
    bulk_failures: Annotated[int | None, int_between(1)] = None
    rejects_above: Annotated[int | None, int_between(0)] = None
    unfinished_jobs: Annotated[int | None, int_between(1)] = None
    maybe_paid_twice: Annotated[int | None, int_between(1)] = None

    def given(self) -> dict[str, Any]:
        return given(**{name: getattr(self, name) for name in _NotifyThresholds.model_fields})


class _NotifyTarget(_NotifyThresholds):
    kind: Annotated[str, one_of(["webhook", "slack"])]
    url: Annotated[Secret, PlainValidator(_webhook_url)]
    name: Annotated[str | None, PlainValidator(check_pipeline_name)] = None
    headers: dict[Text, SecretValue] | None = None
    conditions: list[Annotated[str, one_of(CONDITIONS)]] | None = None

    def build(self, index: int, defaults: _NotifyThresholds) -> NotifyTarget:
        thresholds = NotifyThresholds(**{**defaults.given(), **self.given()})
        return NotifyTarget(
            name=self.name or f"{self.kind}-{index + 1}",
            kind="slack" if self.kind == "slack" else "webhook",
            url=self.url,
            headers=tuple((self.headers or {}).items()),
            conditions=frozenset(CONDITIONS if self.conditions is None else self.conditions),
            thresholds=thresholds,
        )


def _lookup_circle(pipelines: list[_Pipeline]) -> list[str]:
    """The first circle of pipelines looking each other up (a -> b -> a), or []."""
    parents = {
        p.name: sorted({f.lookup for f in p.fields.values() if isinstance(f.lookup, str)})
        for p in pipelines
    }

    def walk(name: str, path: list[str]) -> list[str]:
        if name in path:
            return [*path[path.index(name) :], name]
        for parent in parents.get(name, []):
            if found := walk(parent, [*path, name]):
                return found
        return []

    for name in parents:
        if found := walk(name, []):
            return found
    return []


class ConfigFile(_Model):
    """The whole file."""

    source: _Source
    state: _State | None = None
    crm: _Crm
    pipelines: list[_Pipeline] = Field(default_factory=list, validate_default=True)
    metrics: _Metrics | None = None
    log: _Log | None = None
    notify_defaults: _NotifyThresholds | None = None
    notify: list[_NotifyTarget] | None = None

    @field_validator("notify")
    @classmethod
    def _unique_targets(cls, value: list[_NotifyTarget] | None) -> list[_NotifyTarget] | None:
        names = Counter(t.name or f"{t.kind}-{i + 1}" for i, t in enumerate(value or []))
        twins = sorted(name for name, count in names.items() if count > 1)
        if twins:
            raise broken_rule(f"target names must be unique: {', '.join(twins)} is used twice")
        return value

    @field_validator("pipelines")
    @classmethod
    def _at_least_one(cls, value: list[_Pipeline]) -> list[_Pipeline]:
        if not value:
            raise broken_rule("at least one [[pipelines]] table is required")
        circle = _lookup_circle(value)
        if circle:
            raise broken_rule(
                f"lookups go round in a circle ({' -> '.join(circle)}): each row would wait "
                "for a parent that waits for it; a parent pipeline must not look up its children"
            )
        return value

    def build(self, path: Path) -> Settings:
        unique_fields = {p.name: p.unique_field for p in self.pipelines}
        return Settings(
            path=path,
            source=self.source.build(),
            state=(self.state or _State()).build(),
            crm=self.crm.build(),
            pipelines=tuple(pipeline.build(unique_fields) for pipeline in self.pipelines),
            metrics=(self.metrics or _Metrics()).build(),
            log=(self.log or _Log()).build(),
            notify=tuple(
                target.build(index, self.notify_defaults or _NotifyThresholds())
                for index, target in enumerate(self.notify or [])
            ),
        )


class CrmOnlyFile(_Model):
    """The file as ``syncd import`` reads it: only [crm] is required ([state] and [log] are
    used); [source] and [[pipelines]] may be left out and are checked when present."""

    source: _Source | None = None
    state: _State | None = None
    crm: _Crm
    pipelines: list[_Pipeline] | None = None
    metrics: _Metrics | None = None
    log: _Log | None = None
    notify_defaults: _NotifyThresholds | None = None
    notify: list[_NotifyTarget] | None = None

    def build(self, path: Path) -> CrmOnlySettings:
        return CrmOnlySettings(
            path=path,
            state=(self.state or _State()).build(),
            crm=self.crm.build(),
            log=(self.log or _Log()).build(),
        )


_SECTIONS: dict[str, type[_Model]] = {
    "source": _Source,
    "state": _State,
    "crm": _Crm,
    "metrics": _Metrics,
    "log": _Log,
    "notify_defaults": _NotifyThresholds,
}


def known_keys(table: tuple[str | int, ...]) -> list[str]:
    """The keys allowed in the TOML table at ``table`` (a pydantic loc), for did-you-mean."""
    model: type[_Model] | None
    match table:
        case ():
            model = ConfigFile
        case ("pipelines", int()):
            model = _Pipeline
        case ("pipelines", int(), "fields", str()):
            model = _Field
        case ("pipelines", int(), "fields", str(), "lookup"):
            model = _ModuleLookup
        case ("notify", int()):
            model = _NotifyTarget
        case (str() as section,):
            model = _SECTIONS.get(section)
        case _:
            model = None
    if model is None:
        return []
    section = str(table[0]) if len(table) == 1 or table[:1] == ("notify",) else ""
    return list(model.model_fields) + [f"{key}_file" for key in SECRET_KEYS.get(section, ())]


def validation_context(raw: dict[str, Any]) -> dict[str, Any]:
    """What the validators need to know about the whole file (pipeline names, to spot twins)."""
    pipelines = raw.get("pipelines")
    items = pipelines if isinstance(pipelines, list) else []
    names = Counter(
        item["name"]
        for item in items
        if isinstance(item, dict) and isinstance(item.get("name"), str)
    )
    return {PIPELINE_NAMES: names}
