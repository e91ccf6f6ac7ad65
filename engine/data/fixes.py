"""One-click fixes: each turns a dataset version and its report into a new, immutable child version.

    drop_exact_duplicates   keep the first of each group of identical records
    drop_near_duplicates    keep the first of each near-duplicate cluster
    keep_one_branch         keep the best-ranked (or first) branch of each conversation tree
    drop:<code>             drop the records listed under any finding
    set_system_prompt       one system prompt for every record (replaces or inserts)
    truncate_too_long       cut the last answer so the conversation fits max_length tokens
    redact_pii, redact_secrets
A child is written from the records that can be read; records without any conversation (unparseable lines) cannot
be carried over, and the fix entry says how many were left out.
"""

from __future__ import annotations

from engine.data import versions
from engine.data.checks import sensitive
from engine.data.report import Finding, Report
from engine.data.shapes import Record
from engine.data.tokens import load_counter
from engine.errors import StudioError
from engine.store.tables import DatasetVersion


class FixError(StudioError, ValueError):
    pass


def choices(finding: Finding) -> list[tuple[str, str]]:
    """(fix id, label) of each fix a finding offers: its own, and dropping its records where that is not the same."""
    out = []
    if finding.fix:
        out.append((finding.fix.id, finding.fix.label))
    if finding.locations and not (finding.fix and (finding.fix.id.startswith("drop")
                                                   or finding.fix.id == "keep_one_branch")):
        out.append((f"drop:{finding.code}", "Drop these records"))
    return out


def offered(report: Report) -> dict[str, tuple[str, Finding]]:
    """fix id -> (label, the finding it fixes): every fix the report offers."""
    return {fix_id: (label, finding) for finding in report.findings for fix_id, label in choices(finding)}


def apply_fix(version: DatasetVersion, report: Report, fix_id: str, **params) -> DatasetVersion:
    records = versions.load_version(version).records
    unreadable = sum(1 for r in records if r.messages is None)
    kept = [r for r in records if r.messages is not None]
    changed, kept = _fix_function(fix_id)(kept, report, fix_id, params)
    entry = {"id": fix_id, "params": {k: v for k, v in params.items() if k != "tokenizer"}, "changed": changed,
             "removed": len(records) - len(kept)}
    if unreadable:
        entry["left_out_unreadable"] = unreadable
    return versions.create_child(version, kept, entry)


def _locations(report: Report, code: str) -> set[int]:
    finding = report.finding(code)
    if finding is None:
        raise FixError(f"The report has no {code} finding to fix.")
    return set(finding.locations)


def _drop(records: list[Record], report: Report, fix_id: str, params: dict) -> tuple[int, list[Record]]:
    code = {"drop_exact_duplicates": "exact_duplicate", "drop_near_duplicates": "near_duplicate",
            "keep_one_branch": "conversation_branches"}.get(fix_id, fix_id.removeprefix("drop:"))
    gone = _locations(report, code)
    kept = [r for r in records if r.location not in gone]
    return len(records) - len(kept), kept


def _set_system_prompt(records: list[Record], report: Report, fix_id: str, params: dict) -> tuple[int, list[Record]]:
    prompt = (params.get("prompt") or "").strip()
    if not prompt:
        raise FixError("Type the system prompt to set.")
    changed = 0
    for rec in records:
        system = [m for m in rec.turns if m["role"] == "system"]
        if system and system[0]["content"] == prompt and len(system) == 1:
            continue
        rec.messages = [{"role": "system", "content": prompt}] + [m for m in rec.turns if m["role"] != "system"]
        changed += 1
    return changed, records


def _truncate(records: list[Record], report: Report, fix_id: str, params: dict) -> tuple[int, list[Record]]:
    """Cut the last assistant message token by token; drop a record whose prompt alone is too long."""
    max_length = int(params.get("max_length") or report.stats.get("max_length") or 2048)
    counter = load_counter(params.get("tokenizer"))
    targets = _locations(report, "too_long")
    kept, changed = [], 0
    for rec in records:
        if rec.location not in targets:
            kept.append(rec)
            continue
        last = max(i for i, m in enumerate(rec.turns) if m["role"] == "assistant")
        others = sum(counter.count([m["content"]])[0] + counter.overhead.get(m["role"], 4)
                     for i, m in enumerate(rec.turns) if i != last)
        budget = max_length - others - counter.overhead["assistant"]
        if budget < 1:
            continue  # the prompt alone does not fit: dropped
        ids = counter.tokenizer.encode(rec.turns[last]["content"], add_special_tokens=False).ids[:budget]
        cut = {**rec.turns[last], "content": counter.tokenizer.decode(ids).rstrip("\ufffd")}
        rec.messages = rec.turns[:last] + [cut]
        kept.append(rec)
        changed += 1
    return changed, kept


def _redact(records: list[Record], report: Report, fix_id: str, params: dict) -> tuple[int, list[Record]]:
    code = "pii" if fix_id == "redact_pii" else "secret"
    targets = _locations(report, code)
    changed = 0
    with sensitive.SecretScanner() as scanner:
        for rec in records:
            if rec.location in targets:
                for m in rec.turns:
                    m["content"] = (sensitive.redact_pii(m["content"]) if code == "pii"
                                    else sensitive.redact_secrets(m["content"], scanner))
                changed += 1
    return changed, records


def _fix_function(fix_id: str):
    if fix_id.startswith("drop:") or fix_id in ("drop_exact_duplicates", "drop_near_duplicates", "keep_one_branch"):
        return _drop
    table = {"set_system_prompt": _set_system_prompt, "truncate_too_long": _truncate,
             "redact_pii": _redact, "redact_secrets": _redact}
    if fix_id not in table:
        raise FixError(f"Unknown fix {fix_id!r}.")
    return table[fix_id]
