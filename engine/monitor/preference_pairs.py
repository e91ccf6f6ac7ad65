"""Preference pairs from production feedback: where users gave one request (the same masked last user message, to
the same model version) a good answer (rating 4-5, thumbs up, resolved) and a bad one (rating 1-2, thumbs down,
unresolved), the newest good answer is chosen over the newest bad one. Rows whose request has feedback of one kind
only are counted as unpaired, or, when the build is unpaired (KTO), kept as feedback: each distinct answer once,
labelled good or bad.

The monitor is the last stage of the path, so it is the one that gathers every source: `monitor:VERSION` here, the
campaigns and files through engine.review.preferences.

    studio prefs build --from monitor:support-v1.2.0 --from campaign:12
"""

from __future__ import annotations

from collections import Counter

from engine.models import registry
from engine.monitor import retrain, storage
from engine.review import preferences
from engine.store.tables import User

COLUMNS = ("request", "response", "rating", "thumbs", "resolved")


def from_monitor(project_id: int, label: str, dropped: Counter, unpaired: list[dict] | None = None) -> list[dict]:
    """The pairs of one version's production logs, newest first, with their provenance; the answers rated one way
    only go to `unpaired` as feedback rows when it is given."""
    registry.get_version(label)  # a version the registry does not know is one sentence, not an empty dataset
    rows = storage.read(project_id, COLUMNS, model=label)
    if rows.empty:
        raise preferences.PreferenceError(f"There are no stored production logs of {label[:80]} in this project.")
    rows = rows.assign(good=retrain.good_feedback(rows), bad=retrain.low_feedback(rows))
    rows = rows[rows.good != rows.bad].sort_values("ts", ascending=False)  # rated one way (not both, not neither)
    pairs = []
    for request, group in rows.groupby("request", sort=False):
        good, bad = group[group.good], group[group.bad]
        if good.empty or bad.empty:
            if unpaired is None:
                dropped["unpaired_feedback"] += len(group)
            else:
                unpaired += _feedback(str(request), group.drop_duplicates("response"), label)
            continue
        chosen, rejected = good.iloc[0], bad.iloc[0]
        if " ".join(str(chosen.response).split()) == " ".join(str(rejected.response).split()):
            dropped["same_answer"] += 1
            continue
        pairs.append({"prompt": [{"role": "user", "content": str(request)}], "chosen": str(chosen.response),
                      "rejected": str(rejected.response),
                      "provenance": {"source": "monitor", "version": label, "chosen_at": str(chosen.ts),
                                     "rejected_at": str(rejected.ts)}})
    return pairs


def _feedback(request: str, group, label: str) -> list[dict]:
    return [{"prompt": [{"role": "user", "content": request}], "completion": str(row.response), "label": bool(row.good),
             "provenance": {"source": "monitor", "version": label, "at": str(row.ts)}}
            for row in group.itertuples()]


def build(actor: User, project_id: int, sources: list[str], name: str = "preferences",
          unpaired: bool = False) -> preferences.BuildResult:
    """engine.review.preferences.build with `monitor:VERSION` sources too; unpaired: feedback for KTO."""
    dropped: Counter = Counter()
    feedback: list[dict] | None = [] if unpaired else None
    gathered = {source: from_monitor(project_id, source.partition(":")[2].strip(), dropped, feedback)
                for source in sources if source.startswith("monitor:")}
    rest = [s for s in sources if not s.startswith("monitor:")]
    return preferences.build(actor, project_id, rest, name, gathered=gathered, dropped=dropped, unpaired=feedback)
