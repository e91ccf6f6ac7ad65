"""Property: bad lines inserted at positions P are reported at exactly P, whatever P is."""

from __future__ import annotations

import json

from conftest import chat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.data.loading import load_records
from engine.data.quality import CheckOptions, check_loaded

BAD_LINES = ["{not json", "[1, 2, 3]", '"a string"', "12", '{"messages": []}', '{"foo": 1}']


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_good=st.integers(min_value=1, max_value=25),
       bad=st.lists(st.tuples(st.integers(min_value=0, max_value=40), st.sampled_from(BAD_LINES)), max_size=8),
       blanks=st.lists(st.integers(min_value=0, max_value=40), max_size=4))
def test_bad_lines_are_reported_where_they_are(ws, tmp_path, n_good, bad, blanks):
    lines = [json.dumps(chat(i)) for i in range(n_good)]
    for pos, text in bad:
        lines.insert(min(pos, len(lines)), text)
    for pos in blanks:
        lines.insert(min(pos, len(lines)), "")
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = {i + 1 for i, line in enumerate(lines) if line in BAD_LINES}
    report = check_loaded(load_records(path, shape="openai"), "p", CheckOptions())
    reported = {loc for f in report.errors for loc in f.locations}
    assert reported == expected
