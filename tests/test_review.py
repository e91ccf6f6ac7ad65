"""Human review: campaigns, blind queues, idempotent submits under concurrency, roles, exports, and the pages."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from conftest import HOSTILE, ROOT, app_as, evaluated_run, reviewers, run_studio, shown, user_of
from sqlalchemy import func, select, text

from engine.review import campaigns, ratings_export, stats
from engine.store import db, users
from engine.store.tables import Rating, User


def test_assignment_is_balanced_overlapping_and_blind(ws):
    run_id = evaluated_run(ws, 30)
    admin, revs = user_of("admin"), reviewers(4)
    campaign = campaigns.create_campaign(admin, run_id, "pairwise", [r.id for r in revs], sample_size=10, overlap=2)
    loads = [p["total"] for p in campaigns.progress(admin, campaign.id)]
    assert sum(loads) == 10 * 2 and max(loads) - min(loads) <= 1  # balanced queues, every item twice
    sides = set()
    for r in revs:
        entries = campaigns.queue(r, campaign.id)
        assert [e.position for e in entries] == list(range(1, len(entries) + 1))
        for e in entries:
            view = campaigns.task(r, e.assignment_id)
            assert set(view["answers"]) == {"A", "B"} and "model" not in view
            dumped = json.dumps(view)
            assert "finetuned" not in dumped and "base" not in dumped.replace("base answer", "")
            sides.add(view["answers"]["A"].startswith("fine-tuned"))
    assert sides == {True, False}  # the fine-tuned answer is sometimes A, sometimes B
    assert all("reviewed" not in c["name"] for c in campaigns.my_campaigns(revs[0]))  # no analyst-typed names
    rating = campaigns.create_campaign(admin, run_id, "rating", [r.id for r in revs], sample_size=5, overlap=1)
    assert sum(p["total"] for p in campaigns.progress(admin, rating.id)) == 10  # each example once per model


def test_a_double_submit_or_an_edit_keeps_one_row(ws):
    run_id = evaluated_run(ws, 5)
    admin, (rev,) = user_of("admin"), reviewers(1)
    campaign = campaigns.create_campaign(admin, run_id, "pairwise", [rev.id], sample_size=5, overlap=1)
    entry = campaigns.queue(rev, campaign.id)[0]
    first = campaigns.submit(rev, entry.assignment_id, vote="A")
    assert campaigns.submit(rev, entry.assignment_id, vote="A") == first
    assert campaigns.submit(rev, entry.assignment_id, vote="B", comment="changed my mind") == first
    with db.session() as s:
        assert s.scalar(select(func.count(Rating.id))) == 1
    assert campaigns.task(rev, entry.assignment_id)["previous"]["vote"] == "B"
    assert campaigns.queue(rev, campaign.id)[0].done


def test_roles_are_checked_by_the_engine(ws):
    run_id = evaluated_run(ws, 5)
    admin, (a, b) = user_of("admin"), reviewers(2)
    with pytest.raises(users.PermissionDenied):
        campaigns.create_campaign(a, run_id, "rating", [a.id, b.id])
    with pytest.raises(users.PermissionDenied):
        ratings_export.export(a, 1, "csv")
    with pytest.raises(users.PermissionDenied):
        campaigns.create_campaign(None, run_id, "rating", [a.id])
    campaign = campaigns.create_campaign(admin, run_id, "rating", [a.id], sample_size=2, overlap=1)
    theirs = campaigns.queue(a, campaign.id)[0].assignment_id
    with pytest.raises(users.PermissionDenied, match="not in your queue"):
        campaigns.task(b, theirs)
    with pytest.raises(users.PermissionDenied, match="not in your queue"):
        campaigns.submit(b, theirs, scores=dict.fromkeys(campaigns.CRITERIA, 3))
    with pytest.raises(campaigns.ReviewError, match="1 to 5"):
        campaigns.submit(a, theirs, scores={"accuracy": 7})
    users.set_role(admin, a.id, "analyst")  # a role change applies at once
    with pytest.raises(users.PermissionDenied):
        users.require(b, "analyst")
    assert users.require(a, "analyst").role == "analyst"


def test_twenty_reviewers_submitting_fifty_ratings_each_make_exactly_a_thousand_rows(ws):
    run_id = evaluated_run(ws, 50)
    admin, revs = user_of("admin"), reviewers(20)
    campaign = campaigns.create_campaign(admin, run_id, "pairwise", [r.id for r in revs], sample_size=50, overlap=20)
    errors: list[BaseException] = []
    start = threading.Barrier(len(revs))

    def work(reviewer) -> None:
        try:
            entries = campaigns.queue(reviewer, campaign.id)
            start.wait()
            for k, e in enumerate(entries):
                campaigns.submit(reviewer, e.assignment_id, vote=campaigns.VOTES[k % 4])
        except BaseException as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(r,)) for r in revs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []  # in particular no "database is locked"
    with db.session() as s:
        assert s.scalar(select(func.count(Rating.id)).where(Rating.campaign_id == campaign.id)) == 1000
    assert all(p["done"] == 50 for p in campaigns.progress(admin, campaign.id))


WRITER = """
import os, sys, time
from sqlalchemy import insert, text
from engine.store import db
from engine.review import campaigns
from engine.store import users
from engine.store.tables import Rating, now
campaign, reviewer = int(sys.argv[1]), users.get_user(int(sys.argv[2]))
entries = campaigns.queue(reviewer, campaign)
for e in entries[:5]:
    campaigns.submit(reviewer, e.assignment_id, vote="A")
print("committed", flush=True)
engine = db.get_engine()
with engine.connect() as conn:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if engine.dialect.name == "sqlite" else "BEGIN")
    for e in entries[5:]:
        a = conn.execute(text("SELECT item_id FROM assignments WHERE id = :id"), {"id": e.assignment_id}).scalar()
        conn.execute(insert(Rating).values(campaign_id=campaign, item_id=a, reviewer_id=reviewer.id, vote="B",
                                           comment="", safety_flag=False, created_at=now(), updated_at=now()))
    print("in flight", flush=True)
    time.sleep(60)
"""


def test_killing_a_writer_mid_transaction_keeps_every_committed_rating(ws):
    run_id = evaluated_run(ws, 10)
    admin, (rev,) = user_of("admin"), reviewers(1)
    campaign = campaigns.create_campaign(admin, run_id, "pairwise", [rev.id], sample_size=10, overlap=1)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(campaign.id), str(rev.id)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "committed"
    assert proc.stdout.readline().strip() == "in flight"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with db.get_engine().connect() as conn:
        if conn.dialect.name == "sqlite":
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        votes = [r[0] for r in conn.execute(text("SELECT vote FROM ratings"))]
    assert len(votes) == 5 and set(votes) <= {"base", "finetuned"}  # the 5 committed; none of the in-flight "B"s
    entries = campaigns.queue(rev, campaign.id)
    assert sum(e.done for e in entries) == 5
    campaigns.submit(rev, next(e for e in entries if not e.done).assignment_id, vote="tie")  # the database still writes
    assert sum(e.done for e in campaigns.queue(rev, campaign.id)) == 6


def test_disagreements_go_to_one_more_reviewer(ws):
    run_id = evaluated_run(ws, 6)
    admin, revs = user_of("admin"), reviewers(4)
    campaign = campaigns.create_campaign(admin, run_id, "pairwise", [r.id for r in revs], sample_size=6, overlap=2)
    for k, r in enumerate(revs):
        for e in campaigns.queue(r, campaign.id):
            campaigns.submit(r, e.assignment_id, vote="A" if k == 0 else "tie")
    before = sum(p["total"] for p in campaigns.progress(admin, campaign.id))
    disagreeing = len(campaigns.queue(revs[0], campaign.id))  # reviewer 0 disagrees with whoever shares an item
    sent = campaigns.escalate(admin, campaign.id)
    assert sent == disagreeing and sum(p["total"] for p in campaigns.progress(admin, campaign.id)) == before + sent
    assert campaigns.escalate(admin, campaign.id) == 0  # already waiting for their extra reviewer


def test_csv_export_neutralizes_formulas_and_quotes_per_rfc_4180(ws):
    run_id = evaluated_run(ws, 4)
    admin, (rev,) = user_of("admin"), reviewers(1)
    campaign = campaigns.create_campaign(admin, run_id, "pairwise", [rev.id], sample_size=4, overlap=1)
    nasty = ['=HYPERLINK("http://evil","click")', "+1+2", "-3", "@SUM(A1)", "\tTAB", 'say "hi",\nthen go']
    for e, comment in zip(campaigns.queue(rev, campaign.id), nasty):
        campaigns.submit(rev, e.assignment_id, vote="A", comment=comment)
    out = ratings_export.export(admin, campaign.id, "csv")
    assert "\r\n" in out
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    comments = {r["comment"] for r in rows}
    assert "'=HYPERLINK(\"http://evil\",\"click\")" in comments and "'+1+2" in comments and "'@SUM(A1)" in comments
    assert "'-3" in comments and not any(c[:1] in "=+-@\t\r" for c in comments if c)
    assert all(r["vote"] in ("base", "finetuned") for r in rows)  # analysts' export names the models
    proc = run_studio("review", "export", campaign.id, "--format", "json", env_home=ws.root)
    assert proc.returncode == 0 and len(json.loads(proc.stdout)["ratings"]) == 4


def test_users_add_from_the_cli_stores_only_a_hash(ws):
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "users", "add", "bob", "--role", "reviewer",
                           "--password-stdin"], input="correct horse battery\n", capture_output=True, text=True,
                          cwd=ROOT, env={**__import__("os").environ, "STUDIO_HOME": str(ws.root)}, timeout=60)
    assert proc.returncode == 0 and "correct horse" not in proc.stdout + proc.stderr
    assert users.verify("bob", "correct horse battery").role == "reviewer"
    assert users.verify("bob", "wrong") is None and users.verify("nobody", "x") is None
    with db.get_engine().connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM users WHERE name = 'bob'")).scalar()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    database = ws.root / "studio.db"  # absent on the PostgreSQL pass: the server's files are not ours to read
    raw = (database.read_bytes() if database.is_file() else b"") + b"".join(p.read_bytes()
                                                                             for p in ws.root.rglob("*.log"))
    assert b"correct horse" not in raw
    short = run_studio("users", "add", "eve", "--role", "reviewer", "--password-stdin", env_home=ws.root)
    assert short.returncode == 2 and "too short" in short.stderr
    dup = subprocess.run([sys.executable, "-m", "engine.cli", "users", "add", "bob", "--role", "admin",
                          "--password-stdin"], input="another password\n", capture_output=True, text=True, cwd=ROOT,
                         env={**__import__("os").environ, "STUDIO_HOME": str(ws.root)}, timeout=60)
    assert dup.returncode == 2 and dup.stderr.strip() == "studio: There is already a user called 'bob'."


def test_rating_results_and_agreement(ws):
    run_id = evaluated_run(ws, 12)
    admin, revs = user_of("admin"), reviewers(2)
    campaign = campaigns.create_campaign(admin, run_id, "rating", [r.id for r in revs], sample_size=12, overlap=2)
    with db.session() as s:
        from engine.store.tables import Assignment, CampaignItem
        model_of = dict(s.execute(select(Assignment.id, CampaignItem.model)
                                  .join(CampaignItem, CampaignItem.id == Assignment.item_id)).all())
    for k, r in enumerate(revs):
        for e in campaigns.queue(r, campaign.id):
            score = 5 if model_of[e.assignment_id] == "finetuned" else 2
            if k == 1 and e.position % 4 == 0:
                score -= 1  # a little disagreement
            campaigns.submit(r, e.assignment_id, scores=dict.fromkeys(campaigns.CRITERIA, score))
    res = stats.campaign_results(admin, campaign.id)
    acc = res["criteria"]["accuracy"]
    assert acc["models"]["finetuned"]["mean"] > acc["models"]["base"]["mean"]
    assert acc["models"]["finetuned"]["ci_low"] > acc["models"]["base"]["ci_high"]
    assert acc["paired"]["n"] == 12 and acc["paired"]["p_holm"] < 0.05
    assert acc["alpha"] > 0.8 and acc["band"] == "reliable"
    assert len(acc["weighted_kappa"]) == 1 and acc["weighted_kappa"][0]["kappa"] > 0.8
    bias = {b["reviewer"]: b["bias"] for b in res["reviewer_bias"]}
    assert bias["rev01"] < 0 < bias["rev00"]
    assert res["most_disagreement"][0]["spread"] == 1.0


def test_signed_out_visitors_see_only_sign_in_and_a_fresh_install_creates_the_admin(ws):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file("../app.py", default_timeout=60).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Finetune Studio"] and at.subheader[0].value == "Create the administrator"
    assert not at.sidebar.text  # no workspace path, no project for a visitor
    at.text_input(key="signin_admin_name").input("root")
    at.text_input(key="signin_admin_password").input("a long password")
    at.text_input(key="signin_admin_again").input("a long password")
    at.button[0].click().run()  # not a browser on the server itself, and no setup token: refused
    assert "setup token" in at.error[0].value and not users.has_users()
    token = users.new_setup_token()  # what `studio ui` prints in the server's terminal
    at.text_input(key="signin_admin_token").input(token)
    at.button[0].click().run()
    assert not at.exception
    admin = users.verify("root", "a long password")
    assert admin.role == "admin" and at.session_state["user_id"] == admin.id
    assert "root (admin)" in [t.value for t in at.sidebar.text]  # signed in straight away
    fresh = AppTest.from_file("../app.py", default_timeout=60).run()
    assert fresh.subheader[0].value == "Sign in"  # no second admin form once one exists
    fresh.text_input(key="signin_name").input("root")
    fresh.text_input(key="signin_password").input("wrong password")
    fresh.button[0].click().run()
    assert [shown(e.value) for e in fresh.error] == ["Unknown user name or wrong password."]


def test_a_reviewer_reviews_a_campaign_blind_and_the_results_page_updates(ws):
    run_id = evaluated_run(ws, 3)
    admin, (rev,) = user_of("admin"), reviewers(1)
    campaign = campaigns.create_campaign(admin, run_id, "rating", [rev.id], sample_size=3, overlap=1)
    at = app_as("reviewer", name="rev00").run()
    assert not at.exception
    assert [t.value for t in at.title] == ["My reviews"]
    for path in ("pages/train.py", "pages/evaluate.py", "pages/review.py"):
        try:  # the page is not in a reviewer's navigation; if Streamlit runs anything, it is not that page
            at.switch_page(path).run()
        except Exception:  # noqa: BLE001 - refusing the switch is the other acceptable outcome
            pass
        assert [t.value for t in at.title] == ["My reviews"], path
    at = app_as("reviewer", name="rev00").run()
    shown = " ".join(str(e.value) for kind in ("text", "markdown", "caption", "subheader") for e in getattr(at, kind))
    assert "finetuned" not in shown and "fine-tuned" not in shown.replace("fine-tuned answer", "")
    assert any(HOSTILE in t.value for t in at.text)  # shown as plain text
    assert not any("<script>" in m.value for m in at.markdown)
    for _ in range(6):  # 3 examples x 2 models
        for c in campaigns.CRITERIA:
            at.radio(key=next(r.key for r in at.radio if r.key.startswith(f"reviews_{c}_"))).set_value(4)
        next(b for b in at.button if b.label == "Save and next").click().run()
        assert not at.exception and not at.error
    assert sum(e.done for e in campaigns.queue(rev, campaign.id)) == 6, [p.value for p in at.get("progress")]
    assert any("All done" in s.value for s in at.success)
    page = app_as("analyst").run()
    page.switch_page("pages/review.py").run()
    assert not page.exception
    assert any("Ratings (6 from 1 reviewers)" in h.value for h in page.subheader)


def test_ab_page_shows_pairwise_results(ws):
    run_id = evaluated_run(ws, 8)
    admin, revs = user_of("admin"), reviewers(2)
    campaign = campaigns.create_campaign(admin, run_id, "pairwise", [r.id for r in revs], sample_size=8, overlap=2)
    for r in revs:
        for e in campaigns.queue(r, campaign.id):
            fine_side = "A" if campaigns.task(r, e.assignment_id)["answers"]["A"].startswith("fine-tuned") else "B"
            campaigns.submit(r, e.assignment_id, vote=fine_side)
    at = app_as("analyst").run()
    at.switch_page("pages/ab.py").run()
    assert not at.exception
    assert any("The fine-tuned model is preferred" in s.value for s in at.success)
    assert at.metric[0].value == "100%"
    assert any("takes about 194 votes; this campaign has 16" in c.value for c in at.caption)
    at.slider(key="ab_target").set_value(0.7).run()
    assert any(f"takes about {stats.votes_needed(0.7)} votes" in c.value for c in at.caption)


def test_review_stats_wait_for_votes(ws):
    run_id = evaluated_run(ws, 3)
    admin, (rev,) = user_of("admin"), reviewers(1)
    campaign = campaigns.create_campaign(admin, run_id, "pairwise", [rev.id], sample_size=3, overlap=1)
    res = stats.campaign_results(admin, campaign.id)
    assert res["n"] == 0 and res["verdict"] == "No votes yet."


def test_the_notebook_shows_the_latest_win_rate(ws):
    run_id = evaluated_run(ws, 6)
    admin, (rev,) = user_of("admin"), reviewers(1)
    campaign = campaigns.create_campaign(admin, run_id, "pairwise", [rev.id], sample_size=6, overlap=1)
    for e in campaigns.queue(rev, campaign.id):
        campaigns.submit(rev, e.assignment_id, vote="tie")
    at = app_as("analyst").run()
    assert not at.exception
    win = next(m for m in at.metric if m.label == "Fine-tuned win rate")
    assert win.value == "50%" and "over 6 votes" in win.delta


def test_the_setup_token_works_once_and_only_for_the_first_admin(ws):
    token = users.new_setup_token()
    with pytest.raises(users.PermissionDenied, match="setup token"):
        users.create_first_admin("root", "a long password", token="guess")
    admin = users.create_first_admin("root", "a long password", token=token)
    assert admin.role == "admin"
    assert users.new_setup_token() is None  # an install with users has no setup token
    with pytest.raises(users.PermissionDenied, match="already exists"):
        users.create_first_admin("second", "a long password", token=token)


def _time_passes(seconds: float) -> None:
    """Move every recorded sign-in attempt into the past (the throttle reads only their times)."""
    from sqlalchemy import select

    from engine.store import db
    from engine.store.tables import SigninAttempt

    with db.write_session() as s:  # row by row: SQLite keeps times as text, so no arithmetic in SQL
        for attempt in s.scalars(select(SigninAttempt)):
            attempt.at = attempt.at - timedelta(seconds=seconds)


def test_thirty_wrong_passwords_are_slowed_then_locked_out_for_their_address_only(ws):
    """The default policy against guessing: after 3 failures each attempt must wait (1 s, doubling), an attempt
    that does not wait counts as a failure, and 10 failures lock the (account, address) pair for 15 minutes. The
    guesser's address is the connection's: forged X-Forwarded-For headers (a new address per attempt) change nothing,
    and a stranger cannot lock the account's owner out at their own address."""
    from engine.store import addresses, throttle

    users.add_user("alice", "admin", "the right password")
    outcomes = []
    for i in range(30):
        forged = {"X-Forwarded-For": f"10.1.{i}.7", "Forwarded": f"for=198.51.100.{i}", "X-Real-Ip": "198.51.100.9"}
        try:
            users.sign_in("alice", f"guess number {i}", addresses.client_address("203.0.113.7", forged))
        except users.SignInRefused as err:
            outcomes.append(str(err))
    checked = [o for o in outcomes if o == "Unknown user name or wrong password."]
    assert len(checked) == 3  # only the first three guesses reached the password check
    assert any(o.startswith("Too many failed sign-ins: wait") for o in outcomes)
    assert "locked for this address after 10 failed sign-ins" in outcomes[-1]
    # the owner, elsewhere: the account's delay (at most a minute), never the lockout
    with pytest.raises(users.SignInRefused, match="Too many failed sign-ins: wait"):
        users.sign_in("alice", "the right password", "198.51.100.9")
    with pytest.raises(users.SignInRefused, match="Too many failed sign-ins: wait"):
        users.sign_in("bob", "anything at all", "203.0.113.7")  # the guessing address, on another account
    _time_passes(61)
    assert users.sign_in("alice", "the right password", "198.51.100.9").name == "alice"
    with pytest.raises(users.SignInRefused, match=r"locked .* try again after \d\d:\d\d UTC \(in 1\d min\)"):
        users.sign_in("alice", "the right password", "203.0.113.7")  # still locked where the guesses came from
    attempts = throttle.recent()
    assert {a.address for a in attempts} == {"203.0.113.7", "198.51.100.9"}  # no forged address was believed
    assert {"wrong", "throttled", "locked", "waited", "ok"} == {a.outcome for a in attempts}
    assert all("guess" not in (a.user_name + a.address) for a in attempts)  # never a password
    at = app_as("admin").run()
    at.switch_page("pages/users.py").run()
    assert set(at.dataframe[1].value["address"]) == {"203.0.113.7", "198.51.100.9"}
    assert throttle.unlock("alice") > 0  # an admin's decision
    assert users.sign_in("alice", "the right password", "203.0.113.7").name == "alice"


def test_forwarded_headers_are_believed_only_from_listed_proxies(monkeypatch):
    from engine.store import addresses

    forged = {"X-Forwarded-For": "198.51.100.9, 203.0.113.7"}
    assert addresses.client_address("203.0.113.7", forged) == "203.0.113.7"  # nobody trusted by default
    assert addresses.client_address(None, forged) == "127.0.0.1"
    monkeypatch.setenv("STUDIO_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")
    # behind the proxy, the right-most hop it did not add itself; what the client wrote to its left is ignored
    assert addresses.client_address("10.0.0.5", forged) == "203.0.113.7"
    assert addresses.client_address("10.0.0.5", {"X-Forwarded-For": "203.0.113.7, 10.0.0.9"}) == "203.0.113.7"
    assert addresses.client_address(None, {"Forwarded": 'for=192.0.2.60;proto=https, for="[2001:db8::17]:4711"'}) \
        == "2001:db8::17"
    assert addresses.client_address("10.0.0.5", {"X-Real-Ip": "192.0.2.1"}) == "192.0.2.1"
    assert addresses.client_address("10.0.0.5", {}) == "10.0.0.5"
    assert addresses.client_address("192.0.2.99", forged) == "192.0.2.99"  # not a listed proxy: its own address
    monkeypatch.setenv("STUDIO_TRUSTED_PROXIES", "10.0.0.0/8, not-a-network")
    with pytest.raises(addresses.ProxySettingError, match="'not-a-network' is not an address or a CIDR"):
        addresses.client_address("10.0.0.5", forged)


def test_only_one_first_admin_even_when_two_visitors_race(ws):
    results: list = []
    start = threading.Barrier(8)

    def attempt(name: str) -> None:
        start.wait()  # all at once: on PostgreSQL a NOT EXISTS check alone let two of them in
        try:
            results.append(users.create_first_admin(name, "a long password", local=True))
        except users.PermissionDenied as err:
            results.append(err)

    threads = [threading.Thread(target=attempt, args=(f"first{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    admins = [r for r in results if not isinstance(r, Exception)]
    assert len(admins) == 1 and len(users.list_users()) == 1 and admins[0].role == "admin"
    with pytest.raises(users.UserError, match="too short"):
        users.create_first_admin("x", "short", local=True)


def test_a_visitor_creating_the_first_admin_while_another_one_commits_is_refused(ws):
    """The race made certain: one visitor's transaction has taken the first-admin lock and inserted its admin but not
    committed when a second visitor tries. The second must wait and then be refused (on PostgreSQL, under READ
    COMMITTED, a NOT EXISTS check alone saw no admin and let the second one in)."""
    from engine.store.tables import now

    outcome: list = []
    with db.session() as first:
        db.serialize(first, db.FIRST_ADMIN_LOCK_KEY)
        first.add(User(name="first", role="admin", password_hash="x", active=True, created_at=now()))
        first.flush()
        second = threading.Thread(target=lambda: outcome.append(_try_first_admin("second")))
        second.start()
        second.join(timeout=1.0)  # it must be waiting on the first visitor now
        assert second.is_alive() or outcome and isinstance(outcome[0], users.PermissionDenied)
    second.join(timeout=60)
    assert isinstance(outcome[0], users.PermissionDenied)
    assert [u.name for u in users.list_users()] == ["first"]


def _try_first_admin(name: str):
    try:
        return users.create_first_admin(name, "a long password", local=True)
    except users.PermissionDenied as err:
        return err


def test_with_oidc_configured_visitors_get_the_provider_sign_in(ws):
    from streamlit.testing.v1 import AppTest

    user_of("admin")  # local accounts exist, but OIDC replaces the password form
    at = AppTest.from_file("../app.py", default_timeout=60)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                          "client_id": "studio", "client_secret": "s",
                          "server_metadata_url": "https://idp.example/.well-known/openid-configuration"}
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in"] and not at.text_input  # no local password form
    assert any("organization's account" in m.value for m in at.markdown)


def test_campaigns_from_the_cli(ws):
    run_id = evaluated_run(ws, 10)
    revs = reviewers(2)
    proc = run_studio("review", "create", run_id, "--kind", "pairwise", "--reviewers", "rev00,rev01", "--sample",
                      "5", "--overlap", "2", "--gold", "2:finetuned", env_home=ws.root)
    assert proc.returncode == 0, proc.stderr
    # seed 0 samples examples 1, 3, 5, 7 and 10; gold example 2 is added: 6 items, each for both reviewers
    assert proc.stdout.strip() == "Campaign 1 created: 12 items across 2 reviewers."
    for r in revs:
        for e in campaigns.queue(r, 1):
            campaigns.submit(r, e.assignment_id, vote="tie")
    out = json.loads(run_studio("review", "results", "1", "--json", env_home=ws.root).stdout)
    assert out["n"] == 12 and out["ties"] == 12 and out["win_rate"] == 0.5 and len(out["gold"]) == 2
    bad = run_studio("review", "create", run_id, "--reviewers", "rev00,nobody", env_home=ws.root)
    assert bad.returncode == 2 and "No such user: nobody" in bad.stderr


def test_rating_results_print_from_the_cli(ws):
    run_id = evaluated_run(ws, 4)
    admin, revs = user_of("admin"), reviewers(2)
    campaign = campaigns.create_campaign(admin, run_id, "rating", [r.id for r in revs], sample_size=4, overlap=2)
    for k, r in enumerate(revs):
        for e in campaigns.queue(r, campaign.id):
            campaigns.submit(r, e.assignment_id, scores=dict.fromkeys(campaigns.CRITERIA, 3 + (e.position + k) % 3))
    proc = run_studio("review", "results", campaign.id, env_home=ws.root)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "16 ratings from 2 reviewers." and lines[1].startswith("  accuracy     base ")
    assert "alpha" in lines[1] and len(lines) == 6


def test_session_cookies_are_signed_expiring_and_revocable(ws, monkeypatch):
    from engine.store import sessions

    alice = users.add_user("alice", "analyst", "the right password")
    cookie, max_age = sessions.start(alice)
    assert max_age == 12 * 3600 and sessions.user_of(cookie).name == "alice"
    sid, expires, token, mac = cookie.split(".")
    for forged in (f"{sid}.{int(expires) + 3600}.{token}.{mac}",  # a longer life: the MAC no longer matches
                   f"{int(sid) + 1}.{expires}.{token}.{mac}", f"{sid}.{expires}.{token}x.{mac}", "garbage", ""):
        assert sessions.user_of(forged) is None, forged
    with db.session() as s:
        stored = [r[0] for r in s.execute(text("SELECT token_sha256 FROM sessions"))]
    assert token not in stored[0]  # only the token's hash is kept
    monkeypatch.setenv("STUDIO_SESSION_HOURS", "0")
    stale, _ = sessions.start(alice)
    assert sessions.user_of(stale) is None  # expired
    assert sessions.revoke(cookie) and sessions.user_of(cookie) is None  # signed out
    monkeypatch.setenv("STUDIO_SESSION_HOURS", "12")
    again, _ = sessions.start(alice)
    assert sessions.user_of(again).name == "alice"
    with db.session() as s:
        s.get(User, alice.id).active = False
    assert sessions.user_of(again) is None  # a deactivated account


def test_paired_figures_add_up_and_missing_agreement_says_why(ws):
    """Means of 1.80 and 2.00 beside a paired diff of 0.25 (the base rated on an example the fine-tuned model was
    not): the paired columns show the means the diff is made of; one reviewer means no overlap, said in words."""
    def row(item, example, model, score):
        return {"item": item, "example": example, "model": model, "reviewer": "rev00", "safety_flag": False,
                "comment": "", **dict.fromkeys(campaigns.CRITERIA, score)}

    base = [1, 2, 2, 2, 2]  # mean 1.80 over five examples
    tuned = [2, 2, 2, 2]  # mean 2.00 over the first four
    rows = [row(i, i, "base", s) for i, s in enumerate(base)] + \
        [row(10 + i, i, "finetuned", s) for i, s in enumerate(tuned)]
    acc = stats.rating_results(rows)["criteria"]["accuracy"]
    assert acc["models"]["base"]["mean"] == pytest.approx(1.8) and acc["models"]["finetuned"]["mean"] == 2.0
    paired = acc["paired"]
    assert paired["n"] == 4 and paired["mean_diff"] == pytest.approx(0.25)
    assert paired["finetuned_mean"] - paired["base_mean"] == pytest.approx(paired["mean_diff"])
    assert acc["alpha"] is None and acc["agreement"].startswith("not enough overlap: 0 items")
    assert "None" not in acc["agreement"]


def test_the_role_mapping_takes_the_strongest_group_and_follows_the_provider(ws, monkeypatch):
    from engine.store import oidc_roles

    monkeypatch.setenv("STUDIO_OIDC_ROLE_MAP", "qa=reviewer, ml-team=analyst, studio-admins=admin")
    mapping = oidc_roles.RoleMapping.load()
    assert mapping.role_for({"groups": ["qa", "ml-team"]}) == "analyst" and mapping.role_for({"groups": "qa"}) == \
        "reviewer" and mapping.role_for({"groups": ["sales"]}) is None and mapping.role_for({}) is None
    first = oidc_roles.user_for({"email": "Kim@Example.com", "groups": ["studio-admins"]}, mapping)
    assert (first.role, first.email) == ("admin", "kim@example.com")
    again = oidc_roles.user_for({"email": "kim@example.com", "groups": ["qa"]}, mapping)  # moved out of admins
    assert again.id == first.id and again.role == "reviewer"
    with pytest.raises(oidc_roles.NoRole, match="none of your groups"):
        oidc_roles.user_for({"email": "kim@example.com", "groups": []}, mapping)
    with pytest.raises(oidc_roles.NoRole, match="unknown roles \\(owner\\)"):
        oidc_roles.RoleMapping.load({"roles": {"x": "owner"}})
