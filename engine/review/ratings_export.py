"""A campaign's ratings for spreadsheets and scripts: CSV (RFC 4180, CRLF, formulas neutralised) or JSON."""

from __future__ import annotations

import csv
import io
import json

from engine.review.campaigns import ReviewError, ratings_table
from engine.store.tables import User

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    """A CSV cell a spreadsheet shows as text: a leading = + - @ tab or CR gets a quote mark (OWASP's advice)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def export(actor: User, campaign_id: int, fmt: str = "csv") -> str:
    """The campaign's ratings as CSV (RFC 4180 quoting, CRLF, formulas neutralized) or JSON."""
    rows = ratings_table(actor, campaign_id)
    if fmt == "json":
        return json.dumps({"campaign": campaign_id, "ratings": rows}, indent=2, ensure_ascii=False) + "\n"
    if fmt != "csv":
        raise ReviewError(f"Unknown export format {fmt!r}; choose csv or json.")
    out = io.StringIO()
    columns = list(dict.fromkeys(k for r in rows for k in r)) or ["item"]
    writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([_cell(r.get(c)) for c in columns])
    return out.getvalue()
