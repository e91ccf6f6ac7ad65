"""The lineage of a model version as a Graphviz graph (dataset -> split -> run -> evaluation -> review -> A/B ->
version). Every label is escaped for DOT's quoted strings: the browser draws it as text, never as markup."""

from __future__ import annotations

from ui.text import shown_model


def _q(text: object) -> str:
    """A DOT quoted string: backslashes and quotes escaped, line breaks kept as \\n, length bounded."""
    cleaned = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ")
    return '"' + cleaned.replace("\n", "\\n")[:160] + '"'


def dot(label: str, stage: str, found: dict) -> str:
    nodes: list[tuple[str, str]] = []
    edges: list[tuple[str, str]] = []
    d, s, r = found.get("dataset"), found.get("split"), found.get("run", {})
    if d:
        for older, newer in zip(d["chain"][1:], d["chain"]):
            nodes.append((f"d{older['id']}", f"dataset v{older['version']}\n{older['name']}"))
            edges.append((f"d{older['id']}", f"d{newer['id']}"))
        nodes.append((f"d{d['id']}", f"dataset v{d['version']}\n{d['name']}\n{d['records']:,} records"))
    if s:
        c = s["counts"]
        nodes.append(("split", f"split {s['id']}\n{c['train']}/{c['validation']}/{c['test']}\ntest locked "
                               f"{s['test_sha256'][:10]}"))
        if d:
            edges.append((f"d{d['id']}", "split"))
    nodes.append(("base", f"base model\n{shown_model(found['facts']['base_model'])}"))
    nodes.append(("run", f"run {r.get('id')}\n{found['facts']['technique']}"))
    edges += [("split", "run")] if s else []
    edges.append(("base", "run"))
    last = "run"
    for k, e in enumerate(found.get("evaluations", [])):
        nodes.append((f"e{k}", f"evaluation\nvs {e['baseline']}\n{e['n_examples']} examples"))
        edges.append(("run", f"e{k}"))
        last = f"e{k}"
    for k, rv in enumerate(found.get("reviews", [])):
        nodes.append((f"r{k}", f"review {rv['campaign']}\n{rv['kind']}"))
        edges.append((last, f"r{k}"))
    for k, ab in enumerate(found.get("ab_decisions", [])):
        nodes.append((f"a{k}", f"A/B\n{ab.get('decision')}"))
        edges.append(("run", f"a{k}"))
    nodes.append(("version", f"{label}\n{stage}"))
    tails = [n for n, _ in nodes if n.startswith(("e", "r", "a"))] or ["run"]
    edges += [(t, "version") for t in tails]
    lines = ["digraph lineage {", "rankdir=LR;", 'node [shape=box, style="rounded", fontsize=10];']
    lines += [f"{n} [label={_q(text)}];" for n, text in nodes]
    lines += [f"{a} -> {b};" for a, b in dict.fromkeys(edges)]
    return "\n".join(lines + ["}"])
