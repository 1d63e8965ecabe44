"""JSON parameters (syncd.jsontext): the same values as ``json`` gives, whatever the value."""

from __future__ import annotations

import json

import pytest

from syncd import jsontext


@pytest.mark.parametrize(
    "value",
    [
        {"1": "0cc175b9c0f1b6a831c399e269772661", "Müller 🚚": "x"},
        [["a", "5725767000001000002", None], ["b", "5725767000001000004", "ff"]],
        [1, 2**63 - 1, -(2**63)],
        [2**64, 10**30],  # beyond orjson's integers: through json
        ["lone \udc80 surrogate"],  # orjson refuses it: through json
        ['quote " backslash \\ newline \n nul \x00'],
        [],
    ],
)
def test_the_text_reads_back_as_the_value(value: object) -> None:
    text = jsontext.dumps(value)
    assert isinstance(text, str)
    assert json.loads(text) == value
