"""The target's documents: the orjson parser answers as ``jsontext.loads`` does, the depth bound holds
whichever parser read it, and hostile input is a ValueError."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from umig_monitor.core.jsontext import MAX_DEPTH, loads
from umig_monitor.probes.jsondoc import loads_document

SAME = [
    b'{"umig": {"status": "healthy", "version": "1.2.0"}}',
    b'{"a": 1, "a": 2}',
    b"  [1, 2.5, -0, true, false, null]  ",
    b'{"s": "[[[[{{{{ brackets in a string are not depth"}',
    '{"é": "ü"}'.encode(),
    b"18446744073709551615",
    b'"\\ud800"',  # a lone surrogate: orjson refuses it, json reads it
    b"\xef\xbb\xbf{}",  # a byte order mark
    '{"x": 1}'.encode("utf-16"),
]


@pytest.mark.parametrize("raw", SAME)
def test_documents_read_as_loads_reads_them(raw: bytes) -> None:
    assert loads_document(raw) == loads(raw) == json.loads(raw)


@pytest.mark.parametrize("raw", [b"NaN", b"[Infinity]", b"-1e400"])
def test_non_finite_numbers_read_as_before(raw: bytes) -> None:
    """orjson refuses them; the document is still read (assess then drops what is not a figure)."""
    value: Any = loads_document(raw)
    number = value[0] if isinstance(value, list) else value
    assert isinstance(number, float)
    assert not math.isfinite(number)


def nested(depth: int) -> bytes:
    return b'{"a": ' * (depth - 1) + b"[]" + b"}" * (depth - 1)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (nested(MAX_DEPTH + 1), f"nested deeper than {MAX_DEPTH}"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), f"nested deeper than {MAX_DEPTH}"),
        (b"[" * 2000 + b"]" * 2000, "nested"),  # past orjson's own limit
        (b"[" * 100_000, "nested too deep"),
        (b'{"umig": ', "malformed JSON"),
        (b'"\xff"', "malformed JSON"),
        (b"{}x", "malformed JSON"),
        (b"", "malformed JSON"),
    ],
)
def test_out_of_bounds_is_a_value_error(raw: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        loads_document(raw)
    with pytest.raises(ValueError, match=message):
        loads(raw)


def test_depth_at_the_bound_is_read() -> None:
    assert loads_document(nested(MAX_DEPTH)) == loads(nested(MAX_DEPTH))
    # Many brackets side by side are not depth: the walk runs and finds it shallow.
    wide = json.dumps([[{"k": []}] for _ in range(50)]).encode()
    assert loads_document(wide) == json.loads(wide)


documents = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text() | st.floats(allow_nan=False),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(documents)
def test_any_document_reads_as_loads_reads_it(document: Any) -> None:
    raw = json.dumps(document, allow_nan=True).encode()
    assert loads_document(raw) == loads(raw)
