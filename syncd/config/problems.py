"""Problems found in a config file, in syncd's wording: "<file>: <dotted.key[0]>: <expected>".

pydantic reports each error with a loc tuple and its own English; this module renders the loc
as the key an operator sees in the file and replaces the English with what is expected.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field

from pydantic_core import ErrorDetails

from syncd.config.schema import LOOKUP_TAGS, SECRET_KEYS, known_keys
from syncd.config.values import show

Loc = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")

# pydantic's built-in error types that a TOML file can trigger, in syncd's words
_EXPECTED = {
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "int_type": "must be an integer",
    "model_type": "must be a table",
    "dict_type": "must be a table",
    "list_type": "must be an array",
    "too_short": "must not be empty",
}
_NOT_KEYS = frozenset({"[key]", *LOOKUP_TAGS})
_NO_VALUE_QUOTED = {"missing", "extra_forbidden", "rule", "too_short", "too_long"}


def dotted(loc: Loc) -> str:
    """('pipelines', 0, 'flush_size') -> 'pipelines[0].flush_size', as a TOML user reads it."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else json.dumps(part)
            text += f".{key}" if text else key
    return text


def is_secret(loc: Loc) -> bool:
    rest = loc[2:] if len(loc) >= 2 and isinstance(loc[1], int) else loc[1:]  # [[notify]]
    return bool(rest) and rest[0] in SECRET_KEYS.get(str(loc[0]), ())


@dataclass
class Problems:
    """Every problem found so far, each at the key it belongs to.

    ``hidden`` holds keys whose own errors would only repeat a problem already reported
    (a secret whose ``*_file`` could not be read is also "missing").
    """

    found: list[tuple[Loc, str]] = field(default_factory=list)
    hidden: set[Loc] = field(default_factory=set)

    def add(self, loc: Loc, message: str) -> None:
        self.found.append((loc, message))

    def hide(self, loc: Loc) -> None:
        """Drop validation errors at ``loc``: they follow from a problem already reported."""
        self.hidden.add(loc)

    def covers(self, loc: Loc) -> bool:
        """Whether a problem was already reported at ``loc`` or at a table containing it."""
        prefixes = self.hidden | {found for found, _ in self.found}
        return any(loc[: len(prefix)] == prefix for prefix in prefixes)

    def add_pydantic(self, errors: list[ErrorDetails]) -> None:
        for error in errors:
            # a mapping key's own error carries a "[key]" marker after the key, and an error
            # in one form of a lookup the form's tag: neither is a key of the file, drop them
            loc = tuple(part for part in error["loc"] if part not in _NOT_KEYS)
            if not self.covers(loc):
                self.found.append((loc, _expected(error, loc)))

    def lines(self, file_name: str) -> list[str]:
        ordered = sorted(self.found, key=lambda item: _sort_key(item[0]))
        return [f"{file_name}: {dotted(loc)}: {message}" for loc, message in ordered]


def _expected(error: ErrorDetails, loc: Loc) -> str:
    kind = error["type"]
    if kind == "missing":
        return _missing(loc)
    if kind == "extra_forbidden":
        return unknown_key(loc)
    if kind == "list_type" and loc == ("pipelines",):
        message = "must be one or more [[pipelines]] tables"
    elif kind == "too_long":
        message = f"must have at most {error.get('ctx', {}).get('max_length')} entries"
    else:
        message = _EXPECTED.get(kind, error["msg"])
    if kind in _NO_VALUE_QUOTED or is_secret(loc):
        return message
    return f"{message}, got {show(error['input'])}"


def _missing(loc: Loc) -> str:
    if is_secret(loc):
        return f"is required (or {loc[-1]}_file naming a file that holds it)"
    return "is required"


def unknown_key(loc: Loc) -> str:
    known = known_keys(loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f'unknown key (did you mean "{close[0]}"?)'
    return "unknown key (known keys: " + ", ".join(known) + ")"


def _sort_key(loc: Loc) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, part) if isinstance(part, int) else (1, part) for part in loc)
