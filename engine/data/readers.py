"""Reading data files as a stream of (location, value) items: JSONL, JSON arrays, CSV/TSV and Parquet.

Memory is bounded by one record (JSONL, JSON arrays through ijson, CSV) or one row batch (Parquet), not by the file.
Locations are 1-based: the physical line for JSONL (blank lines keep their place), the record number for a JSON array,
the data row for CSV and Parquet. A file that cannot be read at all raises `InputError` with one sentence; a single bad
record becomes an `Item` with a `problem` and the reading goes on.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine import settings
from engine.data import csv_rows, nesting
from engine.data.items import InputError, Item
from engine.data.shapes import shape_of

CONTAINERS = ("jsonl", "json", "csv", "tsv", "parquet")
_CHUNK = 1 << 20
# `\ud800`-`\udfff`: json.loads turns a lone one into a str that cannot be written as UTF-8 (ijson writes "?")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def max_file_bytes() -> int:
    return int(settings.current().max_file_mb * 1024 * 1024)


def check_size(path: Path, max_bytes: int | None = None) -> int:
    """Refuse an empty file or one over the size limit before any parsing."""
    limit = max_file_bytes() if max_bytes is None else max_bytes
    size = path.stat().st_size
    if size == 0:
        raise InputError("The file is empty.")
    if size > limit:
        raise InputError(f"The file is {size / 1e6:.1f} MB, over the {limit / 1e6:.0f} MB limit; split it or raise "
                         "STUDIO_MAX_FILE_MB.")
    return size


def detect_container(path: Path) -> str:
    """Decide the container from the content (a .json file is often JSONL), falling back on the extension."""
    with path.open("rb") as f:
        head = f.read(4096)
    if head.startswith(b"PAR1"):
        return "parquet"
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".parquet"):
        return suffix[1:]
    if not head.lstrip(codecs.BOM_UTF8).lstrip().startswith((b"[", b"{")):
        return "jsonl"
    # JSON Lines when the first non-blank lines are complete values on their own (a broken first line is still
    # JSONL when the lines after it parse); one JSON document (an array, a pretty-printed object) otherwise.
    lines = _first_lines(path, 6)
    complete = [_is_json(line) for line in lines]
    if complete[0]:
        return "jsonl" if len(lines) > 1 or lines[0].lstrip().startswith(b"{") else "json"
    return "jsonl" if any(complete[1:]) else "json"


def _first_lines(path: Path, n: int) -> list[bytes]:
    """The first n non-blank lines (each one record at most: bounded by the file size limit)."""
    out: list = []
    with path.open("rb") as f:
        for raw in f:
            if raw.strip():
                out.append(raw.lstrip(codecs.BOM_UTF8) if not out else raw)
                if len(out) == n:
                    break
    return out or [b""]


def _is_json(line: bytes) -> bool:
    stripped = line.strip()
    if not stripped.startswith((b"{", b"[")):
        return False
    try:
        json.loads(stripped)
        return True
    except (ValueError, RecursionError):
        return False


def utf16_encoding(path: Path) -> str | None:
    """"utf-16" (with a byte-order mark), "utf-16-le" or "utf-16-be" (without one, told by where the zero bytes of
    mostly-ASCII text fall), or None."""
    with path.open("rb") as f:
        head = f.read(4096)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    pairs = len(head) // 2
    if pairs < 8:
        return None
    even_zeros = sum(1 for i in range(0, 2 * pairs, 2) if head[i] == 0)
    odd_zeros = sum(1 for i in range(1, 2 * pairs, 2) if head[i] == 0)
    if odd_zeros >= 0.6 * pairs and even_zeros <= 0.05 * pairs:
        return "utf-16-le"
    if even_zeros >= 0.6 * pairs and odd_zeros <= 0.05 * pairs:
        return "utf-16-be"
    return None


def transcode_to_utf8(path: Path, encoding: str, target: Path) -> None:
    """Stream a UTF-16 file into a UTF-8 copy (same lines, same records); InputError naming the line of a bad
    character."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    lines = 0
    with path.open("rb") as src, target.open("w", encoding="utf-8", newline="") as out:
        while True:
            chunk = src.read(_CHUNK)
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError:
                raise InputError(f"Line {lines + 1} is not valid {encoding.upper()} (the file looks like UTF-16 but "
                                 "holds a broken character); save it as UTF-8.") from None
            lines += text.count("\n")
            out.write(text)
            if not chunk:
                return


def check_text(path: Path) -> None:
    """Refuse binary files and non-UTF-8 text, naming the line and byte offset of the first bad byte."""
    base = 0          # file offset of data[0]
    lines_before = 0  # newlines before data[0]
    carry = b""       # an incomplete UTF-8 sequence at the end of the previous chunk
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            if base == 0 and not carry:
                nul = chunk.find(b"\0")
                if nul != -1:
                    raise InputError(f"The file is binary, not text (NUL byte at byte offset {nul}); upload JSONL, "
                                     "JSON, CSV or Parquet.")
            data = carry + chunk
            try:
                data.decode("utf-8")
                good = len(data)
            except UnicodeDecodeError as e:
                if e.reason != "unexpected end of data" or e.start < len(data) - 3:
                    bad = base + e.start
                    line = lines_before + data.count(b"\n", 0, e.start) + 1
                    raise InputError(f"Line {line} is not valid UTF-8 (byte offset {bad}); the file seems to use "
                                     "another encoding such as Latin-1: save it as UTF-8.") from None
                good = e.start
            lines_before += data.count(b"\n", 0, good)
            carry = data[good:]
            base += good
    if carry:
        raise InputError(f"The file ends in the middle of a UTF-8 character (byte offset {base}); it looks truncated.")


def read_items(path: Path, container: str, delimiter: str | None = None) -> Iterator[Item]:
    """Stream the records of a file that passed `check_size` (and `check_text` for text containers)."""
    if container == "jsonl":
        yield from _read_jsonl(path)
    elif container == "json":
        yield from _read_json(path)
    elif container in ("csv", "tsv"):
        yield from csv_rows.read_csv(path, delimiter or ("\t" if container == "tsv" else ","), max_file_bytes())
    elif container == "parquet":
        yield from _read_parquet(path)
    else:
        raise InputError(f"Unknown file type {container!r}; use one of {', '.join(CONTAINERS)}.")


def _parse_problem(err: Exception, line_no: int, is_last: bool, kind: str = "Line") -> str:
    if isinstance(err, RecursionError):
        return f"{kind} {line_no} is nested too deeply to read."
    assert isinstance(err, json.JSONDecodeError)
    # On the last line without a newline, running out of text means the file was cut, not mistyped.
    if is_last and (err.msg.startswith("Unterminated string") or err.pos >= len(err.doc.rstrip())):
        return f"{kind} {line_no} is cut off: the file ends in the middle of a record."
    return f"{kind} {line_no} is not valid JSON ({err.msg}, column {err.colno})."


def _read_jsonl(path: Path) -> Iterator[Item]:
    with path.open("rb") as f:
        line_no = 0
        pending: tuple[int, bytes] | None = None
        for raw in f:
            line_no += 1
            if line_no == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if pending is not None:
                yield _jsonl_item(*pending, is_last=False)
                pending = None
            if raw.strip():
                pending = (line_no, raw)
        if pending is not None:
            yield _jsonl_item(*pending, is_last=not pending[1].endswith(b"\n"))


def _jsonl_item(line_no: int, raw: bytes, is_last: bool) -> Item:
    text = raw.decode("utf-8")
    try:
        value = json.loads(text)
        if _SURROGATE_ESCAPE.search(raw) and _holds_lone_surrogate(value):
            return Item(line_no, problem=_surrogate_problem("Line", line_no))
        return Item(line_no, value)
    except (json.JSONDecodeError, RecursionError) as err:
        return Item(line_no, problem=_parse_problem(err, line_no, is_last))
    except ValueError:  # Python refuses integers of more than 4,300 digits (a denial-of-service guard)
        return Item(line_no, problem=f"Line {line_no} holds a number too long to read (over 4,300 digits).")


def _read_json(path: Path) -> Iterator[Item]:
    import ijson  # only large JSON arrays need the streaming parser

    with path.open("rb") as f:
        head = f.read(64).lstrip(codecs.BOM_UTF8).lstrip()
    if head.startswith(b"{"):
        yield from _read_json_object(path)
        return
    count = 0
    deep = nesting.too_deep_record(path)  # ijson would hold the whole path of such a record: stop before it
    with nesting.open_json(path) as f:
        try:
            for count, value in enumerate(itertools.islice(ijson.items(f, "item", use_float=True),
                                                           None if deep is None else deep - 1), start=1):
                yield Item(count, value)
            if deep is not None:
                yield Item(deep, problem=_deep_problem(deep))
        except ijson.common.IncompleteJSONError as err:
            if "premature EOF" in str(err) or "incomplete" in str(err).lower():
                problem = f"Record {count + 1} is cut off: the JSON array ends in the middle of a record."
            else:
                problem = f"Record {count + 1} is not valid JSON ({_short(err)})."
            yield Item(count + 1, problem=problem)
        except RecursionError:
            yield Item(count + 1, problem=f"Record {count + 1} is nested too deeply to read.")
        except ValueError:
            yield Item(count + 1, problem=f"Record {count + 1} holds a number too long to read (over 4,300 digits).")


def _deep_problem(record: int) -> str:
    return (f"Record {record} is nested more than {nesting.MAX_DEPTH:,} levels deep, which no training example needs; "
            "the records after it were not read.")


def _read_json_object(path: Path) -> Iterator[Item]:
    """A single JSON object: either one record, or a wrapper whose only list holds the records."""
    text = path.read_text(encoding="utf-8-sig")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"The file is not valid JSON (line {err.lineno}: {err.msg}).") from None
    except RecursionError:
        raise InputError("The JSON file is nested too deeply to read.") from None
    except ValueError:
        raise InputError("The JSON file holds a number too long to read (over 4,300 digits).") from None

    lists = [v for v in value.values() if isinstance(v, list)] if isinstance(value, dict) else []
    wrapper = shape_of(value) is None and len(lists) == 1 and lists[0] and all(isinstance(v, dict) for v in lists[0])
    records = lists[0] if wrapper else [value]
    escapes = _SURROGATE_ESCAPE.search(text.encode("utf-8")) is not None
    for i, record in enumerate(records, start=1):
        bad = escapes and _holds_lone_surrogate(record)
        yield Item(i, problem=_surrogate_problem("Record", i)) if bad else Item(i, record)


def _holds_lone_surrogate(value: Any) -> bool:
    """Whether any text in the parsed value holds half of a surrogate pair (walked without recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _surrogate_problem(kind: str, number: int) -> str:
    return (f"{kind} {number} holds a lone surrogate escape (one of \\ud800-\\udfff without its pair), which is not "
            "text; repair or remove it.")


def _short(err: Exception) -> str:
    return str(err).splitlines()[0][:120]


def _read_parquet(path: Path) -> Iterator[Item]:
    import pyarrow.parquet as pq  # only Parquet files need it

    try:
        pf = pq.ParquetFile(path)
    except Exception:  # pyarrow raises several types for a damaged file
        raise InputError("The file is not a readable Parquet file (its footer is missing or damaged).") from None
    row_no = 0
    for batch in pf.iter_batches(batch_size=2048):
        for row in batch.to_pylist():
            row_no += 1
            yield Item(row_no, row)


def column_names(path: Path, container: str) -> list[str]:
    """The columns of a CSV/TSV/Parquet file (for the column-mapping widgets and flags)."""
    if container == "parquet":
        import pyarrow.parquet as pq  # only Parquet files need it

        return list(pq.ParquetFile(path).schema_arrow.names)
    reader = csv.reader(io.StringIO(csv_rows.first_line(path)), delimiter="\t" if container == "tsv" else ",")
    return [h.strip() for h in next(reader, [])]
