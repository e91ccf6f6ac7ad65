"""Which column holds what, the same way for every import: training data (prompt/completion/system), A/B traffic logs
(variant/user/time) and production logs (time/request/response/...). A user writes a mapping as `key=COLUMN,...`
(CLI) or picks it in a box (pages); a column not mapped is found by the usual names of its key, first match wins.
Log column names are matched without regard to case or surrounding spaces (exports differ); training data's JSON keys
are matched exactly (a key is what the file says)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from engine.errors import StudioError


def parse(text: str | None, keys: Sequence[str], error: type[StudioError] = StudioError) -> dict[str, str]:
    """`key=COLUMN,key=COLUMN` (any subset of `keys`) -> {key: COLUMN}; `error` with one sentence for a bad part."""
    mapping: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, column = part.partition("=")
        key, column = key.strip(), column.strip()
        if not sep or key not in keys or not column:
            raise error(f"Cannot read the column mapping {part.strip()[:80]!r}: write KEY=COLUMN, with KEY one of "
                        f"{', '.join(keys)}.")
        mapping[key] = column
    return mapping


def normal(name: object) -> str:
    """A log column's name as it is compared: lowercased, without surrounding spaces."""
    return str(name).strip().lower()


def find(columns: Iterable[str], usual: Mapping[str, Sequence[str]], mapping: Mapping[str, str] | None = None,
         error: type[StudioError] = StudioError) -> dict[str, str]:
    """{key: the log's own column name} for each key of `usual` that is mapped or found by a usual name (compared
    with `normal`). A mapped column the log lacks is `error`, naming the columns it has."""
    names = {normal(c): c for c in columns}
    found: dict[str, str] = {}
    for key, candidates in usual.items():
        wanted = (mapping or {}).get(key)
        if wanted is not None and normal(wanted) not in names:
            raise error(f"The log has no column {wanted[:80]!r} (mapped to {key}); its columns are "
                        f"{', '.join(list(names)[:30]) or 'none'}.")
        column = normal(wanted) if wanted is not None else next((c for c in candidates if c in names), None)
        if column is not None:
            found[key] = names[column]
    return found
