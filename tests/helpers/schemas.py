"""Emulator schemas derived from the shipped Orders module, for tests of its unique fields."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from syncd.emulator.schema import Schema, parse_schema


def orders_schema(
    *,
    key_case_sensitive: bool = False,
    unique: Sequence[str] = (),
    extra: Sequence[Mapping[str, Any]] = (),
) -> Schema:
    """The shipped ``orders.toml`` module with ``parent_id`` case-sensitive or not, the fields
    named in ``unique`` set to "Do not allow duplicate values", and ``extra`` fields added."""
    text = resources.files("syncd.emulator").joinpath("orders.toml").read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    module = raw["modules"][0]
    for field in module["fields"]:
        if field["api_name"] == "parent_id":
            field["case_sensitive"] = key_case_sensitive
        if field["api_name"] in unique:
            field["unique"] = True
    module["fields"].extend(dict(f) for f in extra)
    return parse_schema(raw, "orders.toml (test variant)")
