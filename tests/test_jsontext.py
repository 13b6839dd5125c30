"""The JSON emitter writes exactly what ``json.dumps(indent=2, ensure_ascii=False)`` writes,
and a ``Streamed`` list item by item, each written before the next is produced."""

from __future__ import annotations

import io
import json
from collections import OrderedDict
from enum import IntEnum, StrEnum
from typing import Any

import pytest

from runspec.plan import jsontext


class Colour(StrEnum):
    RED = "red"


class Level(IntEnum):
    HIGH = 3


class Ratio(float):
    pass


def nested(depth: int) -> Any:
    value: Any = [1, {"k": [2]}]
    for _ in range(depth):
        value = [value]
    return value


VALUES = [
    None, True, False, 0, -7, 2**70, 1.5, 1e-300, float("nan"), float("inf"), -float("inf"),
    "", "plain", "é ü 中文", 'quote " backslash \\ newline \n tab \t', "\x1b[31m\x00\u2028",
    "\ud800 lone surrogate", [], {}, (), [[]], [{}], {"a": []}, {"a": {}},
    {"a": 1, "b": [1, 2.5, None, True, "x"], "c": {"d": {"e": [{"f": []}]}}},
    {7: "int key", 2.5: "float key", True: "bool key", False: "false key", None: "none key",
     "": "empty key"},
    {Colour.RED: [Colour.RED, Level.HIGH, Ratio(0.25)]},
    OrderedDict(b=1, a=(2, (3,))), (1, [2, (3, 4)]), nested(40),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda value: repr(value)[:30])
def test_dumps_writes_what_json_dumps_writes(value):
    assert jsontext.dumps(value) == json.dumps(value, indent=2, ensure_ascii=False)


def test_what_json_refuses_is_refused():
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsontext.dumps({"a": [object()]})
    with pytest.raises(TypeError, match="keys must be"):
        jsontext.dumps({(1, 2): "tuple key"})


def test_a_streamed_list_is_written_item_by_item_as_it_is_produced():
    stream = io.StringIO()
    written_before: list[str] = []

    def items():
        for index in range(5):
            written_before.append(stream.getvalue())
            yield {"index": index, "values": [index, str(index)]}

    document = {"head": {"n": 5}, "items": jsontext.Streamed(items()), "tail": []}
    jsontext.write(document, stream)
    expected = {**document, "items": [{"index": i, "values": [i, str(i)]} for i in range(5)]}
    assert stream.getvalue() == json.dumps(expected, indent=2, ensure_ascii=False)
    for index, before in enumerate(written_before):  # item i is out before i + 1 is made
        assert before.count('"index": ') == index


def test_streamed_lists_nest_and_may_be_empty():
    documents = [{"changes": jsontext.Streamed(iter([])), "n": 0},
                 {"changes": jsontext.Streamed(iter([{"a": 1}, {"b": [2]}])), "n": 2}]
    stream = io.StringIO()
    jsontext.write(jsontext.Streamed(documents), stream)
    assert stream.getvalue() == json.dumps(
        [{"changes": [], "n": 0}, {"changes": [{"a": 1}, {"b": [2]}], "n": 2}], indent=2)
    assert jsontext.dumps(jsontext.Streamed([1, 2])) == json.dumps([1, 2], indent=2)
