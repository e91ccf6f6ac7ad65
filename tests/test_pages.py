"""The Data and Quality pages driven through Streamlit's AppTest, on the real engine and database."""

from __future__ import annotations

import json

import pytest
from conftest import app_as, chat, shown

from engine.data import split, versions
from engine.store import projects


@pytest.fixture
def app(ws):
    projects.create_project("Page tests", "chat", "You are helpful.")
    at = app_as("analyst")
    at.run()
    assert not at.exception
    return at


def page(at, path):
    at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def jsonl(rows) -> bytes:
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


def texts(at) -> str:
    return " ".join(shown(e.value) for kind in ("markdown", "text", "caption", "success", "error", "warning", "info")
                    for e in getattr(at, kind))


def test_upload_import_preview_and_verdict(app):
    at = page(app, "pages/data.py")
    rows = [chat(i) for i in range(20)] + [chat(3)]
    at.file_uploader[0].set_value(("my data.jsonl", jsonl(rows), "application/jsonl")).run()
    assert not at.exception
    assert "OpenAI chat" in texts(at)
    next(b for b in at.button if b.label == "Import as a dataset version").click().run()
    assert not at.exception
    assert "Imported 21 records as version v1" in texts(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Records"] == "21" and metrics["Usable examples"] == "20"
    assert len(at.dataframe) >= 1
    assert "Prompt-engineer first" in texts(at)  # 20 examples: the verdict says prompt engineering
    assert len(at.get("plotly_chart")) == 2


def test_try_the_sample(app):
    at = page(app, "pages/data.py")
    next(b for b in at.button if b.label == "Try the sample").click().run()
    assert not at.exception
    version = versions.list_versions(projects.list_projects()[0].id)[0]
    assert version.records == 600
    assert str(at.query_params["version"]).strip("[]'") == str(version.id)
    assert {m.label: m.value for m in at.metric}["Records"] == "600"


def test_csv_column_mapping(app):
    at = page(app, "pages/data.py")
    csv = "question,reply\n" + "".join(f"Question {i} about item {i * 11},Reply {i} with code {i * 5}\n"
                                       for i in range(15))
    at.file_uploader[0].set_value(("faq.csv", csv.encode(), "text/csv")).run()
    assert "not recognized" in texts(at)
    at.selectbox(key="data_map_prompt").set_value("question")
    at.selectbox(key="data_map_completion").set_value("reply").run()
    next(b for b in at.button if b.label == "Import as a dataset version").click().run()
    assert not at.exception and "Imported 15 records" in texts(at)


def test_bad_upload_is_one_sentence_and_the_app_keeps_working(app):
    at = page(app, "pages/data.py")
    at.file_uploader[0].set_value(("old.jsonl", '{"messages": "caf\xe9"}\n'.encode("latin-1"), "text/plain")).run()
    assert not at.exception
    errors = [shown(e.value) for e in at.error]
    assert len(errors) == 1 and "Line 1 is not valid UTF-8 (byte offset" in errors[0]
    next(b for b in at.button if b.label == "Try the sample").click().run()
    assert not at.exception


def test_html_in_data_is_shown_as_text(app):
    at = page(app, "pages/data.py")
    evil = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    rows = [chat(i) for i in range(12)] + [chat(50, answer=evil), chat(51, answer="[click](javascript:alert(1))")]
    rows[0]["messages"][-1]["role"] = "<b>boss</b>"
    at.file_uploader[0].set_value(("x.jsonl", jsonl(rows), "application/jsonl")).run()
    next(b for b in at.button if b.label == "Import as a dataset version").click().run()
    page(at, "pages/quality.py")
    # user text only reaches the page through dataframes/JSON or escaped markdown
    for md in at.markdown:
        assert "<script>" not in md.value and "](javascript" not in md.value
        assert not getattr(md.proto, "allow_html", False)
    assert any(e.label.startswith("Messages with an unknown role") for e in at.expander)


def test_quality_fix_creates_a_version_and_split_locks_test(app):
    at = page(app, "pages/data.py")
    next(b for b in at.button if b.label == "Try the sample").click().run()
    at = page(at, "pages/quality.py")
    labels = [e.label for e in at.expander]
    for title in ("Exact duplicates", "Near duplicates", "Personal data", "Secrets and API keys", "No system prompt"):
        assert any(label.startswith(title + " · ") for label in labels), title  # titled in words
    next(b for b in at.button if b.label == "Drop the extra copies (keeps the first)").click().run()
    assert not at.exception
    assert "Created v2 (598 records" in texts(at)
    pid = projects.list_projects()[0].id
    made_versions = versions.list_versions(pid)
    assert [v.version for v in made_versions] == [2, 1] and made_versions[0].parent_id == made_versions[1].id
    assert not any(e.label.startswith("Exact duplicates") for e in at.expander)

    at.button(key="FormSubmitter:quality_split_form-Split this version").click().run()
    assert not at.exception
    made = split.list_splits(made_versions[0].id)
    assert len(made) == 1 and made[0].overlap["exact"] == 0 and made[0].overlap["near"] == 0
    assert "Split into train" in texts(at)


def test_home_shows_the_cells(app):
    projects_list = projects.list_projects()
    from engine.data import demo_project

    demo_project.import_sample(projects_list[0].id)
    at = page(app, "pages/quality.py")
    at = page(at, "pages/home.py")
    assert {m.label for m in at.metric} >= {"Records", "Errors", "Warnings", "Usable examples"}


def test_train_page_offers_the_default_split(app):
    from engine.data import demo_project

    pid = projects.list_projects()[0].id
    version = demo_project.import_sample(pid)
    at = page(app, "pages/train.py")
    assert any("no split yet" in i.value for i in at.info)
    next(b for b in at.button if b.label == "Make the default split").click().run()
    assert not at.exception
    made = split.list_splits(version.id)
    assert len(made) == 1 and made[0].counts["test"] > 0
    assert any(s.label == "Split" for s in at.selectbox)


def test_a_new_user_and_a_new_project_show_up_at_once(ws):
    at = app_as("admin").run()
    at.switch_page("pages/users.py").run()
    at.text_input(key="users_name").input("newcomer")
    at.text_input(key="users_password").input("a long password")
    at.button(key="FormSubmitter:users_add-Add the user").click().run()
    assert not at.exception
    assert "newcomer" in list(at.dataframe[0].value["name"])  # the table, on the same run of the page
    assert any("Added newcomer (reviewer)." == shown(s.value) for s in at.success)

    projects.create_project("Old one")
    at.switch_page("pages/home.py").run()
    form = at.sidebar
    form.text_input[0].input("Fresh project")
    at.button(key="FormSubmitter:sidebar_new_project-Create project").click().run()
    assert not at.exception
    fresh = next(p for p in projects.list_projects() if p.name == "Fresh project")
    assert at.query_params["project"] in (str(fresh.id), [str(fresh.id)]) and at.sidebar.selectbox[0].value == fresh.id
    assert shown(at.title[0].value) == "Fresh project"  # the page shows the new project, not the old one
    assert any("Created the project Fresh project and selected it." == shown(s.value) for s in at.sidebar.success)
