"""Projects: a name, a task type and the production system prompt; everything else belongs to one."""

from __future__ import annotations

from sqlalchemy import select

from engine.errors import StudioError
from engine.store import db, workspace
from engine.store.tables import Project

TASK_TYPES = ("chat", "classification", "extraction", "summarization", "code")
DEMO_PROJECT = "Support bot (demo)"
DEFAULT_PROJECT = "default"
CURRENT_FILE = "current-project"  # the CLI's current project (`studio project use NAME`), in the workspace


class ProjectError(StudioError, ValueError):
    pass


def list_projects() -> list[Project]:
    with db.session() as s:
        return list(s.scalars(select(Project).order_by(Project.id)))


def get_project(project_id: int) -> Project:
    with db.session() as s:
        project = s.get(Project, project_id)
        if project is None:
            raise ProjectError(f"There is no project {project_id}.")
        return project


def create_project(name: str, task_type: str = "chat", system_prompt: str = "") -> Project:
    name = " ".join(name.split())
    if not name:
        raise ProjectError("Give the project a name.")
    if len(name) > 120:
        raise ProjectError("Project names are at most 120 characters.")
    if task_type not in TASK_TYPES:
        raise ProjectError(f"Unknown task type {task_type!r}; choose one of {', '.join(TASK_TYPES)}.")
    with db.session() as s:
        if s.scalar(select(Project).where(Project.name == name)):
            raise ProjectError(f"A project named {name!r} already exists.")
        project = Project(name=name, task_type=task_type, system_prompt=system_prompt)
        s.add(project)
        s.flush()
        return project


def find_project(name: str) -> Project:
    """The project with this name; ProjectError if there is none (for commands that must not create one)."""
    with db.session() as s:
        found = s.scalar(select(Project).where(Project.name == name))
    if found is None:
        raise ProjectError(f"There is no project named {name!r}.")
    return found


def ensure_project(name: str, task_type: str = "chat", system_prompt: str = "") -> Project:
    with db.session() as s:
        found = s.scalar(select(Project).where(Project.name == name))
        if found:
            return found
    return create_project(name, task_type, system_prompt)


def current_name() -> str:
    """The project CLI commands act on when no --project is given: the one `studio project use` chose, else
    "default"."""
    try:
        name = (workspace.current().root / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return DEFAULT_PROJECT
    return name or DEFAULT_PROJECT


def use(name: str) -> Project:
    """Make an existing project the CLI's current one."""
    project = find_project(name)
    file = workspace.current().root / CURRENT_FILE
    tmp = file.with_name(file.name + ".part")
    tmp.write_text(project.name + "\n", encoding="utf-8")
    tmp.replace(file)
    return project
