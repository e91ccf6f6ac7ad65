"""Every package the product imports is declared, and every declared package is used: base dependencies for what
the studio always needs, an extra for what one capability adds (imported lazily, inside the function that needs it,
so the base install still starts), and a reason for each package that no module imports by name."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

from conftest import ROOT

FIRST_PARTY = {"engine", "ui", "pages", "app", "__future__"}
# Declared, and used without an import statement of ours: why each is there.
USED_BY_NAME_ONLY = {
    "authlib": "Streamlit's st.login (single sign-on) runs on it",
    "polars-runtime-32": "the compiled engine the polars package loads",
    "fastapi": "`transformers serve` (the CPU serving engine, run as a command) is built on it",
    "rich": "`transformers serve` prints through it",
    "psycopg": "SQLAlchemy's driver for postgresql+psycopg:// database URLs",
    "bitsandbytes": "transformers loads QLoRA's 4-bit weights through it",
}
TOOLS = {"test"}  # extras for the developers' tools, checked against tests/ instead


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    def names(reqs: list[str]) -> set[str]:
        return {_norm(re.split(r"[=<>\[ ;]", r, maxsplit=1)[0]) for r in reqs}

    return names(project["dependencies"]), {k: names(v) for k, v in project["optional-dependencies"].items()}


def _imports(files) -> dict[str, list[tuple[str, bool]]]:
    """top-level module -> [(file, imported at module level)]"""
    found: dict[str, list[tuple[str, bool]]] = {}
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(n) for n in tree.body} | {id(c) for n in tree.body if isinstance(n, ast.If | ast.Try)
                                            for c in ast.walk(n)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                found.setdefault(module.split(".")[0], []).append((str(path.relative_to(ROOT)), id(node) in top))
    return found


def _product_files():
    return [*ROOT.glob("engine/**/*.py"), *ROOT.glob("ui/**/*.py"), *ROOT.glob("pages/*.py"), ROOT / "app.py"]


def _third_party(found):
    dists = packages_distributions()
    for module, places in sorted(found.items()):
        if module in sys.stdlib_module_names or module in FIRST_PARTY:
            continue
        yield module, {_norm(d) for d in dists.get(module, [])}, places


def test_every_import_is_declared_and_extras_are_imported_lazily():
    base, extras = _declared()
    problems = []
    for module, dists, places in _third_party(_imports(_product_files())):
        if dists & base:
            continue
        extra = next((name for name, members in extras.items() if dists & members and name not in TOOLS), None)
        if extra is None:
            problems.append(f"{module} ({places[0][0]}) is not declared")
            continue
        problems += [f"{module} is in the {extra} extra but {file} imports it at module level"
                     for file, at_top in places if at_top]
    assert not problems, problems


def test_every_declared_package_is_used():
    base, extras = _declared()
    used = set().union(*(dists for _, dists, _ in _third_party(_imports(_product_files()))))
    product = base | set().union(*(members for name, members in extras.items() if name not in TOOLS))
    unused = sorted(product - used - set(USED_BY_NAME_ONLY))
    assert not unused, f"declared but never imported (remove them, or say why in USED_BY_NAME_ONLY): {unused}"
    assert set(USED_BY_NAME_ONLY) <= product


def test_the_tests_import_only_declared_packages():
    base, extras = _declared()
    known = base | set().union(*extras.values())
    missing = sorted({m for m, dists, _ in _third_party(_imports(ROOT.glob("tests/*.py")))
                      if not dists & known and m not in {"conftest", "fake_teacher", "pii_cases"}})
    assert not missing, missing
