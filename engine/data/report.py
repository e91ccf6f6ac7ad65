"""The quality report: findings (errors and warnings), statistics, and the readiness verdict, as stable JSON.

JSON shape (documented in the README, relied on by scripts and CI):
    {"file", "format", "container", "records", "errors": [FINDING], "warnings": [FINDING], "stats": {...},
     "readiness": {"verdict", "label", "reasons"}}
    FINDING = {"code", "severity", "count", "message", "locations": [int], "fix": {"id", "label"} | null,
               "details": {"LOCATION": "short note"}, "pairs": [[location, related_location]]}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

ERROR_CODES = ("unparseable_line", "not_an_object", "no_messages", "bad_role", "missing_content", "no_assistant_turn",
               "not_text", "too_few_examples")
WARNING_CODES = ("missing_system", "missing_user", "last_turn_not_assistant", "exact_duplicate", "near_duplicate",
                 "conversation_branches", "contradiction", "short_output", "output_copies_input", "repetitive", "too_long", "length_outlier",
                 "template_placeholder", "ai_boilerplate", "pii", "secret", "inconsistent_system_prompt",
                 "language_mix", "unused_field", "system_folded", "pref_identical", "pref_empty_side", "pref_opposite",
                 "pref_length_bias", "pref_prompt_too_long", "feedback_one_sided")
MIN_EXAMPLES = 10  # fewer usable examples than this cannot train anything: a blocking error
# What the page calls each finding (the code stays in the JSON and the CLI).
TITLES = {
    "unparseable_line": "Records that cannot be read", "not_an_object": "Records that are not objects",
    "no_messages": "Records without a conversation", "bad_role": "Messages with an unknown role",
    "missing_content": "Messages without text", "no_assistant_turn": "Conversations without an answer",
    "not_text": "A mapped column that is not text", "too_few_examples": "Too few examples to train on",
    "missing_system": "No system prompt", "missing_user": "No user message",
    "last_turn_not_assistant": "Conversations that do not end with an answer", "exact_duplicate": "Exact duplicates",
    "near_duplicate": "Near duplicates", "contradiction": "Same question, different answers",
    "conversation_branches": "Branches of one conversation", "short_output": "Very short or vague answers",
    "output_copies_input": "Answers that repeat the question", "repetitive": "Repetitive answers",
    "too_long": "Too long for the max length", "length_outlier": "Unusually long or short",
    "template_placeholder": "Unfilled template slots", "ai_boilerplate": "AI boilerplate in answers",
    "pii": "Personal data", "secret": "Secrets and API keys", "inconsistent_system_prompt": "Different system prompts",
    "language_mix": "Mixed languages", "unused_field": "Fields training does not use",
    "system_folded": "System prompt folded into the first turn",
    "pref_identical": "Pairs whose two answers are the same", "pref_empty_side": "Pairs with an empty answer",
    "pref_opposite": "The same prompt preferred both ways", "pref_length_bias": "Longer answers always win",
    "pref_prompt_too_long": "Prompts that fill the max length",
    "feedback_one_sided": "Feedback labelled one way only",
}


@dataclass
class Fix:
    id: str
    label: str


@dataclass
class Finding:
    code: str
    message: str
    locations: list[int]
    fix: Fix | None = None
    details: dict[int, str] = field(default_factory=dict)
    pairs: list[tuple[int, int]] = field(default_factory=list)

    @property
    def severity(self) -> str:
        return "error" if self.code in ERROR_CODES else "warning"

    @property
    def count(self) -> int:
        return len(self.locations)

    @property
    def title(self) -> str:
        return TITLES.get(self.code, self.code.replace("_", " ").capitalize())

    def to_json(self) -> dict:
        return {
            "code": self.code, "title": self.title, "severity": self.severity, "count": self.count,
            "message": self.message,
            "locations": self.locations, "fix": asdict(self.fix) if self.fix else None,
            "details": {str(k): v for k, v in self.details.items()}, "pairs": [list(p) for p in self.pairs],
        }


def drop_fix(code: str) -> Fix:
    return Fix(f"drop:{code}", "Drop these records")


@dataclass
class Report:
    file: str
    container: str
    format: str
    records: int
    findings: list[Finding]
    stats: dict
    readiness: dict

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def blocking(self) -> bool:
        return bool(self.errors)

    def finding(self, code: str) -> Finding | None:
        return next((f for f in self.findings if f.code == code), None)

    @classmethod
    def from_json(cls, data: dict) -> Report:
        findings = []
        for f in data["errors"] + data["warnings"]:
            fix = Fix(**f["fix"]) if f.get("fix") else None
            findings.append(Finding(f["code"], f["message"], list(f["locations"]), fix,
                                    {int(k): v for k, v in f.get("details", {}).items()},
                                    [tuple(p) for p in f.get("pairs", [])]))
        return cls(data["file"], data["container"], data["format"], data["records"], findings, data["stats"],
                   data["readiness"])

    def to_json(self) -> dict:
        return {
            "file": self.file, "format": self.format, "container": self.container, "records": self.records,
            "errors": [f.to_json() for f in self.errors], "warnings": [f.to_json() for f in self.warnings],
            "stats": self.stats, "readiness": self.readiness,
        }


def readiness(good_examples: int, task: str = "chat") -> dict:
    """Fine-tune or prompt-engineer, from the count of usable examples and the task's complexity.

    The thresholds follow the project's guidance: under 100 examples prompt engineering is the better tool;
    500-1,000 suffice for simple tasks, complex ones want 2,000-10,000, highly specialized domains 10,000+.
    """
    simple = task in ("classification", "extraction")
    reasons = [f"{good_examples:,} usable examples (records without errors, exact duplicates counted once)."]
    if good_examples < 100:
        verdict, label = "prompt_engineering", "Prompt-engineer first"
        reasons.append("Under 100 examples a fine-tune mostly memorizes; a good prompt with a few examples does better.")
    elif good_examples < 500:
        verdict, label = "borderline", "Borderline: collect more data"
        reasons.append("100-500 examples can teach a format or tone, but simple tasks usually need 500-1,000.")
    elif simple or good_examples >= 2000:
        verdict, label = "fine_tune", "Ready to fine-tune"
        if good_examples >= 10000:
            reasons.append("10,000+ examples: enough even for highly specialized domains.")
        elif simple:
            reasons.append(f"{task.capitalize()} is a simple task: 500-1,000 examples are enough.")
        else:
            reasons.append("2,000-10,000 examples suit complex tasks; highly specialized domains want 10,000+.")
    else:
        verdict, label = "fine_tune_simple", "Ready for a simple task"
        reasons.append(f"500-2,000 examples suit simple tasks; {task} with varied answers is complex and usually "
                       "wants 2,000-10,000.")
    return {"verdict": verdict, "label": label, "reasons": reasons}
