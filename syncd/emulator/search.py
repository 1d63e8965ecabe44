"""Search Records: ``GET /crm/v8/{module}/search?criteria=((F:equals:a)or(F:equals:b))``.

From the reference (§7.1): ``criteria`` holds at most 10 conditions; a ``(``, ``)`` or ``,`` in
a value is escaped with a backslash; ``page``/``per_page`` page the answer (at most 200 a
page); when nothing matches the answer is 204 with no body; the call costs 1 credit (as "all
other APIs"). The answer is ``{"data": [...], "info": {"per_page", "count", "page",
"more_records"}}``.

The emulator's own choices where Zoho says nothing (UNCONFIRMED): only ``equals`` conditions
joined by ``or`` are understood (anything else is 400 INVALID_QUERY naming the criteria); a
field that is not in the module is 400 INVALID_QUERY; more than 10 conditions is 400
LIMIT_EXCEEDED; an escaped backslash (``\\\\``) stands for one backslash; ``equals`` matches the
whole value, ignoring case for a field whose unique index ignores it (``FieldSpec.fold``).
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import QueryParams

from syncd.emulator.envelope import ApiError
from syncd.emulator.store import ModuleStore

MAX_CRITERIA = 10
MAX_PER_PAGE = 200


def parse_criteria(text: str) -> list[tuple[str, str, str]]:
    """``((F:equals:a)or(F:equals:b))`` -> [(F, equals, a), (F, equals, b)]."""
    tokens = _tokens(text)
    leaves: list[tuple[str, str, str]] = []
    for i, (kind, value) in enumerate(tokens):
        if kind != "text":
            continue
        inside = 0 < i < len(tokens) - 1 and tokens[i - 1][0] == "(" and tokens[i + 1][0] == ")"
        between = 0 < i < len(tokens) - 1 and tokens[i - 1][0] == ")" and tokens[i + 1][0] == "("
        if inside:
            field, sep1, rest = value.partition(":")
            operator, sep2, operand = rest.partition(":")
            if not (sep1 and sep2 and field):
                raise _bad(text)
            leaves.append((field, operator, operand))
        elif not (between and value.strip().lower() == "or"):
            raise _bad(text)
    if not leaves:
        raise _bad(text)
    return leaves


def _tokens(text: str) -> list[tuple[str, str]]:
    """Unescaped parentheses as tokens, and the text between them with escapes resolved."""
    tokens: list[tuple[str, str]] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "()":
            if current:
                tokens.append(("text", "".join(current)))
                current = []
            tokens.append((char, char))
        else:
            current.append(char)
    if current:
        tokens.append(("text", "".join(current)))
    return tokens


def search(store: ModuleStore, params: QueryParams) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The page of matching records (id plus the asked ``fields``, or all) and its ``info``."""
    text = params.get("criteria")
    if not text:
        raise ApiError(
            400, "REQUIRED_PARAM_MISSING", "required param is missing", {"param_name": "criteria"}
        )
    conditions = parse_criteria(text)
    if len(conditions) > MAX_CRITERIA:
        raise ApiError(
            400,
            "LIMIT_EXCEEDED",
            "limit exceeded",
            {"limit": MAX_CRITERIA, "param_name": "criteria"},
        )
    specs = {s.api_name: s for s in store.schema.fields}
    for field, operator, _ in conditions:
        if operator != "equals" or field not in specs:
            raise _bad(text)
    names = [n for n in (params.get("fields") or "").split(",") if n.strip() and n != "id"]
    page, per_page = _int(params, "page", 1, None), _int(params, "per_page", 200, MAX_PER_PAGE)
    matches = [
        record
        for record in store.records()
        if any(
            record.get(field) is not None
            and specs[field].fold(str(record[field])) == specs[field].fold(value)
            for field, _, value in conditions
        )
    ]
    start = (page - 1) * per_page
    shown = matches[start : start + per_page]
    data = [{"id": r["id"]} | ({n: r.get(n) for n in names} if names else dict(r)) for r in shown]
    info = {
        "per_page": per_page,
        "count": len(data),
        "page": page,
        "more_records": start + per_page < len(matches),
    }
    return data, info


def _int(params: QueryParams, name: str, default: int, limit: int | None) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, "INVALID_DATA", "invalid data", {"param_name": name})
    if limit is not None and int(raw) > limit:
        raise ApiError(
            400, "LIMIT_EXCEEDED", "limit exceeded", {"limit": limit, "param_name": name}
        )
    return int(raw)


def _bad(text: str) -> ApiError:
    return ApiError(
        400,
        "INVALID_QUERY",
        "the query given seems to be invalid (the emulator knows equals joined by or)",
        {"param_name": "criteria", "criteria": text},
    )
