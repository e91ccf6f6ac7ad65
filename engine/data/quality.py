"""The data check: read a file, run every check, and return one `Report`.

    studio check data.jsonl --json --max-length 4096

Errors block training; warnings explain, count, locate and offer a fix. The checks run on the records that read
cleanly; a record with an error appears only under its error.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.data import preferences, versions
from engine.data.checks import branches, content, duplicates, language, length, parallel, sensitive, structure
from engine.data.loading import Loaded, load_records
from engine.data.report import MIN_EXAMPLES, Finding, Report, readiness
from engine.data.shapes import SHAPES, Record
from engine.data.tokens import load_counter
from engine.store import workspace

DEFAULT_MAX_LENGTH = 2048
CHECKS_VERSION = 2  # part of the report cache key: bump it when a check changes, so stored reports are recomputed
Progress = Callable[[float, str], None]


@dataclass
class CheckOptions:
    shape: str | None = None
    mapping: dict[str, str] | None = None
    tokenizer: str | None = None
    max_length: int = DEFAULT_MAX_LENGTH
    near_threshold: float = duplicates.NEAR_THRESHOLD
    task: str = "chat"
    max_bytes: int | None = None


def usable(records: list[Record]) -> list[Record]:
    """Records that read cleanly and end in something to learn from."""
    return [r for r in records if r.messages and not r.problems and any(m["role"] == "assistant" for m in r.messages)]


def check_file(path: Path, options: CheckOptions | None = None, progress: Progress | None = None) -> Report:
    options = options or CheckOptions()
    loaded = load_records(Path(path), shape=options.shape, mapping=options.mapping, max_bytes=options.max_bytes)
    return check_loaded(loaded, str(path), options, progress)


def check_loaded(loaded: Loaded, name: str, options: CheckOptions, progress: Progress | None = None) -> Report:
    step = _stepper(progress)
    # Many small objects and no cycles: the cyclic GC only costs time here.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        records = loaded.records
        findings: list[Finding] = structure.check_errors(records)
        findings += structure.check_mapped_columns(records, loaded.mapping)
        good = usable(records)
        # personal data, secrets, languages and content patterns run in a second process meanwhile (both cores)
        helper = parallel.Helper(lambda: [
            sensitive.check_pii(good), sensitive.check_secrets(good), language.check_language(good),
            content.check_placeholders(good), content.check_boilerplate(good)])
        step(0.05, "Counting tokens")
        counter = load_counter(options.tokenizer)
        totals, assistant = length.token_lengths(good, counter)
        stats = length.length_stats(good, totals, assistant, options.max_length, counter.name)
        step(0.35, "Looking for duplicates")
        clusters = duplicates.near_clusters(good, options.near_threshold)
        exact = duplicates.check_exact(good)
        tree_groups = branches.trees(good)
        tree_of = branches.same_tree(tree_groups, len(good))
        step(0.55, "Checking content")
        warnings = [
            *structure.check_turns(good), exact, branches.check_branches(good, tree_groups),
            duplicates.check_near(good, options.near_threshold, clusters, tree_of),
            duplicates.check_contradictions(good, tree_of),
            content.check_short(good), content.check_copies_input(good), content.check_repetitive(good),
            length.check_too_long(good, totals, options.max_length), length.check_outliers(good, totals),
            structure.check_system_prompts(good), structure.check_unused_fields(good),
            structure.check_system_role(good, options.tokenizer),
            *preferences.check_preferences(good, counter, options.max_length),
        ]
        step(0.7, "Personal data, secrets and languages")
        pii, secrets, languages, placeholders, boilerplate = helper.result()
        warnings += [placeholders, boilerplate, pii, secrets, languages]
        n_good = len(good) - (exact.count if exact else 0)
        if n_good < MIN_EXAMPLES:
            findings.append(structure.too_few(n_good))
        findings += [w for w in warnings if w is not None]
        stats["usable_examples"] = n_good
        if loaded.mapping:
            stats["mapping"] = {"columns": loaded.mapping, "detected": loaded.mapping_detected}
        if loaded.encoding != "utf-8":
            stats["encoding"] = loaded.encoding
        step(1.0, "Done")
        return Report(file=name, container=loaded.container, format=loaded.shape, records=len(records),
                      findings=findings, stats=stats, readiness=readiness(n_good, options.task))
    finally:
        if gc_was_enabled:
            gc.enable()


def _options_key(options: CheckOptions, mapping: dict | None) -> str:

    key = json.dumps([CHECKS_VERSION, options.tokenizer, options.max_length, options.near_threshold, options.task,
                      mapping],
                     default=str, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _report_path(version, options: CheckOptions) -> Path:
    key = _options_key(options, version.mapping)
    return workspace.current().reports / f"{version.sha256}-{version.shape}-{key}.json"


def cached_report(version, options: CheckOptions | None = None) -> Report | None:
    """The stored report of a version, or None when it has not been computed with these options."""
    path = _report_path(version, options or CheckOptions())
    return Report.from_json(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None


def report_for_version(version, options: CheckOptions | None = None, progress: Progress | None = None) -> Report:
    """The report of a dataset version, computed once per version and options and kept in the workspace."""
    options = options or CheckOptions()
    found = cached_report(version, options)
    if found is not None:
        return found
    cached = _report_path(version, options)
    loaded = versions.load_version(version)
    report = check_loaded(loaded, f"{version.name} v{version.version}", options, progress)
    generated = sum(f.get("added", 0) for f in version.fixes or [] if f.get("id") == "augment")
    report.stats["generated_records"] = generated  # reviewed records from a teacher (engine.augment.gate)
    report.stats["generated_share"] = generated / version.records if version.records else 0.0
    tmp = cached.with_suffix(".part")
    tmp.write_text(json.dumps(report.to_json(), ensure_ascii=False), encoding="utf-8")
    tmp.replace(cached)
    return report


def _stepper(progress: Progress | None) -> Progress:
    return progress if progress else (lambda fraction, label: None)


def describe_format(shape: str) -> str:
    return SHAPES.get(shape, shape)
