"""Each quality check, on small files built to trigger it (and clean files that must not)."""

from __future__ import annotations

import pytest
from conftest import chat, write_jsonl

from engine.data.quality import CheckOptions, check_file
from engine.data.report import ERROR_CODES, WARNING_CODES


def report_of(tmp_path, rows, raw=None, **opts):
    return check_file(write_jsonl(tmp_path / "d.jsonl", rows, raw), CheckOptions(**opts))


def locs(report, code):
    f = report.finding(code)
    return f.locations if f else []


def test_clean_file_has_no_findings(ws, tmp_path):
    report = report_of(tmp_path, [chat(i) for i in range(30)])
    assert report.findings == [] and not report.blocking
    assert report.stats["usable_examples"] == 30
    t = report.stats["tokens_per_example"]
    assert t["min"] <= t["p5"] <= t["median"] <= t["p95"] <= t["max"]


def test_error_codes_block_and_locate(ws, tmp_path):
    rows = [chat(i) for i in range(12)]
    rows[2] = {"messages": [{"role": "user", "content": "q"}, {"role": "wizard", "content": "a"}]}
    rows[3] = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]}
    rows[4] = {"messages": []}
    rows[5] = {"messages": [{"role": "user", "content": "only a question"}]}
    report = report_of(tmp_path, rows, {7: "{oops", 9: "17"})
    assert report.blocking
    assert locs(report, "bad_role") == [3]
    assert locs(report, "missing_content") == [4]
    assert locs(report, "no_messages") == [5]
    assert locs(report, "no_assistant_turn") == [3, 6]  # record 3 has no assistant; wizard is not one
    assert locs(report, "unparseable_line") == [8]
    assert locs(report, "not_an_object") == [10]
    assert {f.code for f in report.errors} <= set(ERROR_CODES)


def test_too_few_examples(ws, tmp_path):
    report = report_of(tmp_path, [chat(i) for i in range(5)])
    assert report.finding("too_few_examples") and report.blocking
    assert report.readiness["verdict"] == "prompt_engineering"


def test_turn_warnings(ws, tmp_path):
    rows = [chat(i) for i in range(12)]
    rows[1] = chat(1, system=None)
    rows[2]["messages"] = [rows[2]["messages"][0], rows[2]["messages"][2]]
    rows[3]["messages"].append({"role": "user", "content": "and then?"})
    report = report_of(tmp_path, rows)
    assert locs(report, "missing_system") == [2]
    assert locs(report, "missing_user") == [3]
    assert locs(report, "last_turn_not_assistant") == [4]


def test_exact_and_near_duplicates_and_contradictions(ws, tmp_path):
    rows = [chat(i) for i in range(20)]
    rows.append(chat(3))                                     # line 21: exact copy of line 4
    near = chat(5)
    near["messages"][-1]["content"] += " Thanks."            # line 22: near copy of line 6
    rows.append(near)
    contra = chat(7, answer="Completely different: we never ship to that region, sorry about it.")
    rows.append(contra)                                      # line 23: same prompt as line 8
    report = report_of(tmp_path, rows)
    exact = report.finding("exact_duplicate")
    assert exact.locations == [21] and exact.pairs == [(21, 4)]
    assert report.finding("near_duplicate").pairs == [(22, 6)]
    assert locs(report, "contradiction") == [8, 23]


def test_near_duplicate_threshold_is_respected(ws, tmp_path):
    base = chat(1)
    text = base["messages"][-1]["content"]
    far = chat(1, answer=text + " " + " ".join(f"extra{i}" for i in range(40)))
    rows = [chat(i) for i in range(2, 14)] + [base, far]
    assert report_of(tmp_path, rows).finding("near_duplicate") is None


@pytest.mark.parametrize("answer,code", [
    ("ok", "short_output"),
    ("Sure", "short_output"),
    (" ".join(["Try again later."] * 30), "repetitive"),
    ("Dear {{customer_name}}, your order shipped.", "template_placeholder"),
    ("As an AI language model, I cannot check orders.", "ai_boilerplate"),
    ("Mail me at jane.doe@example.org please, or call +44 20 7946 0958.", "pii"),
    ("Card 4111 1111 1111 1111 was charged.", "pii"),
    ("Send it to IBAN GB82 WEST 1234 5698 7654 32 today.", "pii"),
    ("The server is at 203.0.113.7 in our network.", "pii"),
    ("Use the key AKIAIOSFODNN7EXAMPLE for the bucket.", "secret"),
    ("My token is ghp_abcdefghijklmnopqrstuvwxyz0123456789 ok", "secret"),
])
def test_content_warnings(ws, tmp_path, answer, code):
    rows = [chat(i) for i in range(12)]
    rows[4] = chat(4, answer=answer)
    report = report_of(tmp_path, rows)
    assert locs(report, code) == [5]


def test_no_pii_false_alarm_on_ordinary_numbers(ws, tmp_path):
    rows = [chat(i) for i in range(12)]
    rows[0] = chat(0, answer="Version 1.2.3 costs 4.95 pounds; order NW-44120 ships on 2024-05-12 at 10:30:00.")
    assert report_of(tmp_path, rows).finding("pii") is None


def test_secret_values_are_never_in_the_report(ws, tmp_path):
    rows = [chat(i) for i in range(12)]
    rows[0] = chat(0, answer="key AKIAIOSFODNN7EXAMPLE")
    report = report_of(tmp_path, rows)
    assert "AKIAIOSFODNN7EXAMPLE" not in str(report.to_json())


def test_keys_assigned_in_env_and_yaml_form_and_payment_keys_are_secrets(ws, tmp_path):
    """The forms detect-secrets misses unquoted (the same list masks production logs), and words that are not."""
    rows = [chat(i) for i in range(12)]
    rows[1] = chat(1, answer="Put aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY in .env")
    rows[2] = chat(2, answer="config:\n  AWS_SECRET_ACCESS_KEY: je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY")
    rows[3] = chat(3, answer="Charge it with sk_live_4eC39HqLyjWDarjtT1zdp7dc today.")
    rows[4] = chat(4, answer="The password: required. A token=expired error means sign in again.")
    report = report_of(tmp_path, rows)
    assert locs(report, "secret") == [2, 3, 4]
    assert "wJalrXUtnFEMI" not in str(report.to_json()) and "4eC39HqLyj" not in str(report.to_json())


def test_copies_input(ws, tmp_path):
    rows = [chat(i) for i in range(12)]
    rows[2]["messages"][-1]["content"] = rows[2]["messages"][1]["content"]
    assert locs(report_of(tmp_path, rows), "output_copies_input") == [3]


def test_too_long_and_outlier(ws, tmp_path):
    rows = [chat(i) for i in range(30)]
    rows[7] = chat(7, answer=" ".join(f"w{i}" for i in range(3000)))
    report = report_of(tmp_path, rows, max_length=512)
    assert locs(report, "too_long") == [8]
    assert 8 in locs(report, "length_outlier")
    assert report.stats["training_tokens_per_epoch"] < sum([512] * 30)


def test_inconsistent_system_prompt_and_language(ws, tmp_path):
    rows = [chat(i) for i in range(12)]
    rows[3] = chat(3, system="You are a pirate.")
    rows[6] = {"messages": [{"role": "user", "content": "Bonjour, pouvez-vous m'aider à retrouver ma commande ?"},
                            {"role": "assistant", "content": "Bien sûr, votre commande arrivera demain matin chez vous."}]}
    report = report_of(tmp_path, rows)
    assert locs(report, "inconsistent_system_prompt") == [4]
    assert locs(report, "language_mix") == [7]


def test_every_code_is_known(ws, tmp_path):
    rows = [chat(i) for i in range(12)] + [chat(1)]
    for f in report_of(tmp_path, rows).findings:
        assert f.code in ERROR_CODES + WARNING_CODES
        assert f.count == len(f.locations)


def test_readiness_thresholds():
    from engine.data.report import readiness

    assert readiness(50)["verdict"] == "prompt_engineering"
    assert readiness(300)["verdict"] == "borderline"
    assert readiness(800, "classification")["verdict"] == "fine_tune"
    assert readiness(800, "chat")["verdict"] == "fine_tune_simple"
    assert readiness(5000, "chat")["verdict"] == "fine_tune"
    assert "10,000+" in " ".join(readiness(20000)["reasons"])


def test_phone_numbers_are_found_by_libphonenumber_not_by_a_pattern():
    """Precision and recall on the labelled fixture (210 real numbers, 220 look-alikes); bench/pii_precision.py
    prints the figures and the old pattern's (0.67 / 0.53)."""
    from pii_cases import cases

    from engine.data.checks.sensitive import find_pii

    labelled = cases()
    found = [(any(k == "phone" for k, _, _ in find_pii(text)), truth) for text, truth in labelled]
    tp = sum(1 for got, truth in found if got and truth)
    precision = tp / max(sum(1 for got, _ in found if got), 1)
    recall = tp / sum(1 for _, truth in found if truth)
    assert precision >= 0.97 and recall >= 0.95, (precision, recall)
    for text in ("2400-1100-700=600", "1000-450-300=250", "on 2024-03-15", "v2.14.1", "pages 120-135",
                 "ORD-2024-118877", "1998-2004", "10:30-11:45", "978-3-16-148410-0"):
        assert not any(k == "phone" for k, _, _ in find_pii(f"See {text} here.")), text


def test_branches_of_a_conversation_tree_are_one_tree_not_duplicates_or_contradictions(ws, tmp_path):
    """An OpenAssistant-style tree flattened to one record per path: reported as branches, not as near duplicates
    or contradictions; the fix keeps the best-ranked branch and lists the rows it drops before it drops them."""
    from engine.data import fixes, versions
    from engine.data.quality import report_for_version
    from engine.store import projects

    def path(*turns, rank=None):
        msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]
        return {"messages": msgs, **({"rank": rank} if rank is not None else {})}

    opening = "How should I store fresh basil so it keeps for a week?"
    long_a = ("Trim the stems, stand them in a glass of water like flowers, cover loosely with a bag and keep it on "
              "the counter away from direct sun; change the water every other day.")
    rows = [chat(i) for i in range(14)]
    rows[2] = path(opening, "Keep it in the fridge in a sealed box.", rank=2)
    rows[5] = path(opening, long_a, rank=0)
    rows[8] = path(opening, long_a, "And if the leaves turn black?", "That is cold damage: keep it out of the "
                   "fridge and pick off the dark leaves.", rank=0)
    rows[11] = path(opening, "Freeze it chopped in olive oil in an ice-cube tray.", rank=1)
    report = report_of(tmp_path, rows)
    tree = report.finding("conversation_branches")
    assert tree is not None and tree.locations == [3, 9, 12] and tree.title == "Branches of one conversation"
    assert "starts (that one, the best-ranked, is kept)" in tree.details[3] and "6" in tree.details[3]
    assert "(drops the 3 records listed)" in tree.fix.label
    assert report.finding("contradiction") is None and report.finding("near_duplicate") is None
    project = projects.create_project("trees")
    version = versions.import_file(project.id, write_jsonl(tmp_path / "tree.jsonl", rows), "tree.jsonl")
    child = fixes.apply_fix(version, report_for_version(version), "keep_one_branch")
    kept = versions.load_version(child).records
    assert len(kept) == 11 and sum(r.messages[0]["content"] == opening for r in kept) == 1


def test_single_turn_sibling_replies_in_a_flattened_forest_are_branches_not_contradictions(ws, tmp_path):
    """OpenAssistant flattened one record per path: a prompt whose replies all end at once (single-turn siblings)
    is a branch point like the deeper ones, recognised by the forest around it or by the records' tree ids; in a file
    with no tree, the same pair stays a contradiction."""

    def path(*turns, **extra):
        msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]
        return {"messages": msgs, **extra}

    deep_q, deep_a = "What is a good first houseplant?", "A pothos: it forgives missed waterings and low light."
    sib_q = "Write a haiku about autumn rain."
    sib_a = ["Cold rain on the roof, / the maple lets go its red, / puddles hold the sky.",
             "Grey streets shine softly; / umbrellas bloom and wander / through the falling leaves."]
    rows = [chat(i) for i in range(12)]
    rows[1] = path(deep_q, deep_a, "How often should I water it?", "When the top few centimetres of soil are dry.")
    rows[4] = path(deep_q, deep_a, "Does it need sun?", "Bright indirect light is best; it tolerates shade.")
    rows[7] = path(sib_q, sib_a[0])
    rows[10] = path(sib_q, sib_a[1])
    report = report_of(tmp_path, rows)
    assert report.finding("contradiction") is None
    assert locs(report, "conversation_branches") == [5, 11]

    alone = [chat(i) for i in range(12)]
    alone[7], alone[10] = path(sib_q, sib_a[0]), path(sib_q, sib_a[1])
    assert locs(report_of(tmp_path, alone), "contradiction") == [8, 11]  # no tree here: a contradiction
    alone[7]["message_tree_id"] = alone[10]["message_tree_id"] = "6ab24d72-0181-4594-a9cd-deaf170242fb"
    tagged = report_of(tmp_path, alone)
    assert tagged.finding("contradiction") is None and locs(tagged, "conversation_branches") == [11]
