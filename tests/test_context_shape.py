"""Every context has the shape fintech/contexts/shape.py describes (and `startcontext` lays
out): the files every context has, errors only in errors.py, bus subscribers only in
handlers.py and each named for its context, and no module that grew long without saying why."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest
from django.apps import apps

from fintech import bus
from fintech.contexts import shape
from fintech.errors import DomainError

ROOT = Path(__file__).resolve().parent.parent
CONTEXTS = sorted((c for c in apps.get_app_configs() if c.name.startswith("apps.")), key=lambda c: c.label)
FIRST_PARTY = ("apps", "bench", "config", "examples", "fintech", "outbox")
HANDLING = [config for config in CONTEXTS if (Path(config.path) / "handlers.py").is_file()]
MAX_LINES = 400


def modules_of(package: str) -> list[ModuleType]:
    """Every module of a context but its tests and migrations."""
    root = importlib.import_module(package)
    found = [root]
    for info in pkgutil.walk_packages(root.__path__, f"{package}."):
        if ".tests" in info.name or ".migrations" in info.name:
            continue
        found.append(importlib.import_module(info.name))
    return found


@pytest.mark.parametrize("context", CONTEXTS, ids=lambda config: config.label)
def test_every_context_has_the_files_every_context_has(context):
    home = Path(context.path)
    # A module that grew may become a package split by topic (apps/ledger/services/).
    missing = [
        part.path
        for part in shape.PARTS
        if part.every_context
        and not (home / part.path).is_file()
        and not (home / part.path.removesuffix(".py") / "__init__.py").is_file()
    ]
    assert not missing, f"apps/{context.label} lacks {missing}"
    assert context.name == f"apps.{context.label}"


@pytest.mark.parametrize("context", CONTEXTS, ids=lambda config: config.label)
def test_domain_errors_live_in_the_context_s_errors_module(context):
    elsewhere = [
        f"{module.__name__}.{name}"
        for module in modules_of(context.name)
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and issubclass(value, DomainError)
        and value.__module__ == module.__name__
        and not module.__name__.endswith(".errors")
    ]
    assert not elsewhere, f"define these in {context.name}.errors: {elsewhere}"


@pytest.mark.parametrize("context", HANDLING, ids=lambda config: config.label)
def test_handlers_modules_hold_bus_subscribers_named_for_their_context(context):
    handlers = importlib.import_module(f"{context.name}.handlers")
    subscribed = {sub.handler: sub.name for sub in bus.all_subscriptions()}
    functions = [
        value
        for name, value in vars(handlers).items()
        if inspect.isfunction(value) and value.__module__ == handlers.__name__ and not name.startswith("_")
    ]
    assert functions, f"{handlers.__name__} subscribes nothing: remove it"
    for function in functions:
        assert function in subscribed, f"{handlers.__name__}.{function.__name__} is not a bus subscription"
        assert subscribed[function].startswith(f"{context.label}."), subscribed[function]
    assert "django.dispatch" not in Path(handlers.__file__ or "").read_text(), "signal receivers go in receivers.py"


def _docstring(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text())) or ""


def test_no_module_outside_tests_is_over_400_lines_without_saying_why():
    unexplained = []
    for package in FIRST_PARTY:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).parts
            if "tests" in parts or "migrations" in parts:
                continue
            lines = len(path.read_text().splitlines())
            if lines > MAX_LINES and "Over 400 lines because" not in _docstring(path):
                unexplained.append(f"{path.relative_to(ROOT)} ({lines} lines)")
    assert not unexplained, f"split these, or say at their top why not ('Over 400 lines because ...'): {unexplained}"


def test_the_architecture_page_has_the_shape_table():
    page = (ROOT / "docs" / "architecture.md").read_text()
    table = page[page.index("| File | Holds |") :]
    rows = {row.split("|")[1].strip().strip("`") for row in table.splitlines() if row.startswith("| `")}
    files = {part.path for part in shape.PARTS if "/" not in part.path and part.path != "__init__.py"}
    assert files <= rows
    assert {"api/", "tests/", "migrations/"} <= rows
    assert re.search(r"manage\.py startcontext", page)


def _readme_parts() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| Part | What it holds |") :].split("\n\n", 1)[0]
    return [row.split("|")[1].strip().strip("`") for row in table.splitlines()[2:]]


def test_the_readme_s_table_of_parts_matches_the_tree():
    parts = _readme_parts()
    assert [part for part in parts if not (ROOT / part).exists()] == [], "the table names what is not there"
    folders = {path.name + "/" for path in ROOT.iterdir() if path.is_dir() and (path / "__init__.py").exists()}
    folders |= {"deploy/", "docs/", "examples/"}
    listed = {part if part.endswith("/") else part.split("/")[0] + "/" for part in parts}
    assert folders <= listed, f"the table leaves out {folders - listed}"
    assert {f"apps/{config.label}" for config in CONTEXTS} <= set(parts), "every context has its row"
