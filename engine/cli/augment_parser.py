"""The `studio augment` command line: generate candidates from a dataset version through a teacher, open them for
review, accept the reviewed ones as a child version."""

from __future__ import annotations


def add(sub) -> None:
    aug = sub.add_parser("augment", help="augment a dataset version through a teacher model (then review, accept)",
                         description="studio augment VERSION --method paraphrase|synthetic|backtranslate "
                                     "--teacher-url URL --teacher-model NAME ...; studio augment review JOB "
                                     "--reviewers a,b; studio augment accept CAMPAIGN")
    aug.add_argument("target", help="a dataset version id, or 'review' / 'accept'")
    aug.add_argument("ref", nargs="?", type=int, help="review: the augmentation job; accept: the review campaign")
    aug.add_argument("--method", choices=["paraphrase", "synthetic", "backtranslate"], default="paraphrase")
    aug.add_argument("--scope", choices=["user", "exchange"], default="user",
                     help="paraphrase the user turn (the answer kept) or the whole last exchange")
    aug.add_argument("--teacher-url", help="an OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    aug.add_argument("--teacher-model", help="the model name the endpoint serves")
    aug.add_argument("--teacher-key-env", default="OPENAI_API_KEY",
                     help="the environment variable that holds the API key (default OPENAI_API_KEY)")
    aug.add_argument("--per-record", type=int, default=2, help="paraphrase: rewordings per record (default 2)")
    aug.add_argument("--count", type=int, default=50, help="synthetic: conversations to generate (default 50)")
    aug.add_argument("--topic", default="", help="synthetic: what the new conversations are about")
    aug.add_argument("--language", default="French", help="back-translation: the language in between")
    aug.add_argument("--concurrency", type=int, default=4, help="requests in flight at once (default 4)")
    aug.add_argument("--budget-requests", type=int, default=1000, help="stop after this many requests")
    aug.add_argument("--budget-tokens", type=int, default=2_000_000, help="stop after this many tokens")
    aug.add_argument("--out", help="write the kept candidates with their provenance to this JSONL file")
    aug.add_argument("--detach", action="store_true", help="queue the job and return")
    aug.add_argument("--reviewers", help="review: comma-separated user names")
    aug.add_argument("--overlap", type=int, default=1, help="review: reviewers per candidate (default 1)")
    aug.add_argument("--json", action="store_true")
