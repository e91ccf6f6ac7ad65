"""CSV and TSV rows, read leniently as spreadsheets write them, except where a stray quote would swallow rows.

Python's csv reader, like most, makes every line after an unclosed quote part of one cell, up to the next quote or
the end of the file: 19,995 rows vanished into one cell and the report said "5 records". A row that spans lines is
therefore read again strictly; if it is not CSV, it is named with its line and the reading goes on from its second
line. A quote inside one line (`a "5" inch screen`) keeps the lenient reading.
"""

from __future__ import annotations

import collections
import csv
from collections.abc import Iterator
from pathlib import Path

from engine.data.items import InputError, Item


def first_line(path: Path) -> str:
    return next(Lines(path), "")


class Lines:
    """The file's decoded lines for the CSV reader, keeping those of the row being read (`recent`), whether they ran
    out (`ended`), and lines to read again (`replay`): the lenient reader makes every line after a stray quote part
    of one cell, up to the next quote or the end of the file, and those rows would vanish without a word."""

    def __init__(self, path: Path) -> None:
        self._source = self._read(path)
        self._again: collections.deque[str] = collections.deque()
        self.recent: list[str] = []
        self.ended = False
        self.read = self.replayed = 0  # lines read from the file, and read again

    @staticmethod
    def _read(path: Path) -> Iterator[str]:
        with path.open("r", encoding="utf-8-sig", newline="") as f:
            yield from f

    def __iter__(self) -> Lines:
        return self

    def __next__(self) -> str:
        if self._again:
            line = self._again.popleft()
        else:
            try:
                line = next(self._source)
            except StopIteration:
                self.ended = True
                raise
            self.read += 1
        self.recent.append(line)
        return line

    def replay(self, lines: list[str]) -> bool:
        """Read these lines again, unless that would re-read more lines than the file has had so far (a hostile
        file of stray quotes then stays linear: every line is read at most about twice)."""
        if self.replayed + len(lines) > self.read + 1000:
            return False
        self.replayed += len(lines)
        self._again.extendleft(reversed(lines))
        self.ended = False
        return True


def _broken_quote(lines: Lines, delimiter: str) -> bool:
    """Whether the row just read spans lines only through a stray quote: read strictly, its lines are not CSV."""
    if not lines.ended and len(lines.recent) < 2:
        return False  # one line: the lenient reading (e.g. `"5" inch` as 5 inch) is kept
    try:
        for _ in csv.reader(lines.recent, delimiter=delimiter, strict=True):
            pass
    except csv.Error:
        return True
    return lines.ended  # a quoted field the end of the file closed


def read_csv(path: Path, delimiter: str, max_bytes: int) -> Iterator[Item]:
    """The data rows of a CSV/TSV file as items (1-based row numbers; the messages give the line as well)."""
    csv.field_size_limit(max(max_bytes, 1 << 20))
    lines = Lines(path)
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError("The CSV file has no header row.") from None
    if _broken_quote(lines, delimiter):
        raise InputError(f"The header row opens a quoted field that is never closed as CSV needs (it ran to line "
                         f"{reader.line_num}); close or remove the quote.")
    header = [h.strip() for h in header]
    if not any(header):
        raise InputError("The CSV file's first row is empty; it must name the columns.")
    row_no, before = 0, 0  # before: lines counted by earlier readers (a re-read starts a new one)
    while True:
        row_line, lines.recent = before + reader.line_num + 1, []
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            row_no += 1
            yield Item(row_no, problem=f"Row {row_no} (line {before + reader.line_num}) cannot be read as CSV ({err}).")
            continue
        if not any(cell.strip() for cell in row):
            continue
        row_no += 1
        if _broken_quote(lines, delimiter):  # name the row, then read on from its second line
            end = "the end of the file" if lines.ended else f"line {before + reader.line_num}"
            again = len(lines.recent) > 1 and lines.replay(lines.recent[1:])
            yield Item(row_no, problem=f"Row {row_no} (line {row_line}) opens a quoted field that runs to {end}; "
                                       + ("it was skipped and reading went on from the next line." if again
                                          else "close or remove the stray quote."))
            if again:
                before, reader = row_line, csv.reader(lines, delimiter=delimiter)
            continue
        if len(row) != len(header):
            yield Item(row_no, problem=f"Row {row_no} (line {before + reader.line_num}) has {len(row)} fields but "
                                       f"the header has {len(header)}.")
            continue
        yield Item(row_no, dict(zip(header, row)))
