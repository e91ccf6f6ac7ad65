"""How deep a JSON array's records nest, found before ijson builds them.

Why: ijson's `items` keeps the path ("item.item.item...") of every open container, so a file of 100,000 `[` (100 KB)
made it hold about 25 GB and the machine killed the studio. `json.loads` stops such input with a RecursionError;
ijson has no limit of its own. Its `basic_parse` events carry no path and take linear memory, so one pass over them
(in C: map, accumulate and filter, no Python per event) finds whether any place nests deeper than the limit; only
then does a second, Python pass name the record, up to that place.
"""

from __future__ import annotations

from itertools import accumulate
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO

MAX_DEPTH = 1000  # about where Python's own json module stops (its recursion limit)
_DELTA = {"start_map": 1, "start_array": 1, "end_map": -1, "end_array": -1, "map_key": 0, "string": 0, "number": 0,
          "integer": 0, "double": 0, "boolean": 0, "null": 0}


def too_deep_record(path: Path, limit: int = MAX_DEPTH) -> int | None:
    """The 1-based element of the top-level JSON array in which nesting first passes `limit` levels (the array itself
    is level 1), or None when it never does or the file stops being valid JSON first (the parser then says where)."""
    import ijson

    with open_json(path) as f:
        events = ijson.basic_parse(f, use_float=True)
        try:
            if next(filter(limit.__lt__, accumulate(map(_DELTA.__getitem__, map(itemgetter(0), events)))), None) is None:
                return None
        except ijson.common.JSONError:
            return None
    with open_json(path) as f:  # rare: name the record, counting elements at level 1 up to the deep place
        depth = record = 0
        for event, _ in ijson.basic_parse(f, use_float=True):
            change = _DELTA[event]
            if depth == 1 and change >= 0:
                record += 1
            depth += change
            if depth > limit:
                return record
    return None


def open_json(path: Path) -> BinaryIO:
    """The file opened for a JSON parser, past a UTF-8 byte-order mark."""
    f = path.open("rb")
    if f.read(3) != b"\xef\xbb\xbf":
        f.seek(0)
    return f
