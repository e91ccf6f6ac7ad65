"""The Train and Runs pages through AppTest: configure, launch (a double click is one run), watch, succeed."""

from __future__ import annotations

import shutil

from conftest import app_as, shown

from engine.data import demo_project
from engine.jobs import supervisor
from engine.store import workspace


def number(at, label):
    return next(n for n in at.number_input if n.label == label)


def test_configure_launch_watch_and_succeed(ws, demo_model):
    shutil.copytree(demo_model, workspace.current().demo_model)
    demo_project.ensure_demo(build_model=False)
    at = app_as("analyst", timeout=120).run()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    assert not any(b.label == "Make the default split" for b in at.button)  # the demo comes split
    # the recommendation and its reason are on the page
    assert number(at, "learning rate").value == 2e-3
    assert at.selectbox(key="train_gpu").value == "CPU only (this machine)"  # no GPU here: aimed at this CPU
    duration = next(m for m in at.metric if m.label == "Expected duration on this machine")
    assert duration.value.endswith((" s", " min"))  # the demo's recommended run: seconds to minutes on a CPU
    assert any(shown(c.value).startswith(f"About {duration.value} on this machine's CPU") for c in at.caption)
    assert any("tiny model" in c.value for c in at.caption)
    for label, value in (("max steps", 12), ("eval steps", 4), ("save steps", 4), ("logging steps", 2),
                         ("max length", 256), ("per device train batch size", 4)):
        number(at, label).set_value(value)
    train_form = next(f for f in at.get("form") if f.proto.form.form_id == "train_form")
    assert train_form.proto.form.enter_to_submit is False  # Enter in a field never launches: only the button does
    assert any(shown(c.value).startswith("Recommended: Full fine-tuning, because a model of") for c in at.caption)
    launch = next(b for b in at.button if b.label == "Launch")
    launch.click().run()
    assert not at.exception, at.exception
    assert any("Run 1 is" in s.value for s in at.success)
    at.run()  # any later rerun still says which run was launched, and links to it
    assert any("Run 1 is" in s.value for s in at.success)
    assert any(link.proto.page.endswith("runs.py") or "runs" in link.proto.page for link in at.get("page_link"))
    launch.click().run()  # a double click: the same request, the same run
    assert len(supervisor.list_runs()) == 1

    final = supervisor.wait(1, timeout=180)
    assert final.status == "succeeded" and final.step == 12
    at.switch_page("pages/runs.py").run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) >= 4
    assert "succeeded" in at.dataframe[0].value["status"].iloc[0]
    resume = next(b for b in at.button if b.label == "Resume")
    assert resume.disabled and next(b for b in at.button if b.label == "Cancel").disabled  # a finished run

    at.switch_page("pages/home.py").run()
    assert not at.exception
    assert {m.label for m in at.metric} >= {"Runs", "Best validation loss"}


def test_a_refused_launch_says_why_on_the_train_page(ws, demo_model):
    shutil.copytree(demo_model, workspace.current().demo_model)
    demo_project.ensure_demo(build_model=False)
    at = app_as("analyst", timeout=120).run()
    at.switch_page("pages/train.py").run()
    at.selectbox(key=f"train_technique_{workspace.current().demo_model}").set_value("qlora").run()
    next(b for b in at.button if b.label == "Launch").click().run()
    assert not at.exception
    errors = [shown(e.value) for e in at.error]
    assert any("QLoRA needs a CUDA GPU" in e for e in errors), errors
    assert not any("Something went wrong" in e for e in errors) and not supervisor.list_runs()
    assert not any(str(ws.root) in e for e in errors)  # no server path
