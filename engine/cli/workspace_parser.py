"""`studio config`, `project`, `fix` and `chat`: settings, projects, quality fixes and the playground from the
command line (what only the pages did before)."""

from __future__ import annotations

from pathlib import Path


def add(sub) -> None:
    config = sub.add_parser("config", help="the STUDIO_* settings: each value and where it came from")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    show = config_sub.add_parser("show", help="print every setting, its value and its source")
    show.add_argument("--json", action="store_true")
    show.add_argument("--markdown", action="store_true", help="the README's configuration table")

    project = sub.add_parser("project", help="list, create and switch projects (the current one is what commands "
                                             "act on without --project)")
    project_sub = project.add_subparsers(dest="project_command", required=True)
    listing = project_sub.add_parser("list", help="the projects; * marks the current one")
    listing.add_argument("--json", action="store_true")
    create = project_sub.add_parser("create", help="a new project (it becomes the current one)")
    create.add_argument("name")
    create.add_argument("--task", default="chat", help="chat, classification, extraction, summarization or code")
    create.add_argument("--system-prompt", default="", help="the production system prompt")
    use = project_sub.add_parser("use", help="make a project the current one")
    use.add_argument("name")

    fix = sub.add_parser("fix", help="list the quality fixes a dataset version's report offers, or apply one (a new "
                                     "version; the old one stays)")
    fix.add_argument("version", type=int, help="a dataset version id (studio versions lists them)")
    fix.add_argument("fix_id", nargs="?", help="the fix to apply (without it: the fixes offered)")
    fix.add_argument("--prompt", help="set_system_prompt: the system prompt to set")
    fix.add_argument("--max-length", type=int, help="the training max length the report checks against "
                                                    "(default 2048)")
    fix.add_argument("--tokenizer", type=Path, help="a model folder whose tokenizer counts the tokens")
    fix.add_argument("--json", action="store_true")

    chat = sub.add_parser("chat", help="the playground: a prompt answered by a run's base model and by the "
                                       "fine-tuned model")
    chat.add_argument("model", help="a run id or a model version (NAME-vX.Y.Z)")
    chat.add_argument("--prompt", help="one prompt (without it: one prompt per line of standard input)")
    chat.add_argument("--system", help="the system prompt (default: the one the run was trained with)")
    chat.add_argument("--max-new-tokens", type=int, default=256)
    chat.add_argument("--json", action="store_true", help="one JSON object per prompt, after both answers")
