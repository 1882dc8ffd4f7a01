"""`manage.py startcontext`: a new context is born in the shape of the others, inside the
import-linter contracts, and (with --register) installed with its API."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from fintech.contexts import shape

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
# What a checkout needs to lint and collect a context: the packages, the settings, the tests' setup.
TREE = ("apps", "config", "fintech", "outbox", "tests", "manage.py", "conftest.py", "pyproject.toml")

PYPROJECT = """
[[tool.importlinter.contracts]]
name = "Contexts are independent"
type = "independence"
modules = ["apps.customers", "apps.accounts"]

[[tool.importlinter.contracts]]
name = "Inside a context: interfaces > public > services > selectors > models"
type = "layers"
containers = [
    "apps.customers",
    "apps.accounts",  # the second
]
layers = ["(api)", "services"]
"""


def contracts(text: str) -> dict[str, list[str]]:
    found = tomllib.loads(text)["tool"]["importlinter"]["contracts"]
    return {c["name"]: c.get("modules") or c.get("containers") for c in found}


def test_the_new_context_joins_both_contracts_in_each_lists_own_style():
    edited = shape.add_to_import_contracts(PYPROJECT, "fraud")
    lists = contracts(edited)
    assert lists[shape.INDEPENDENCE_CONTRACT] == ["apps.customers", "apps.accounts", "apps.fraud"]
    assert lists[shape.LAYERS_CONTRACT] == ["apps.customers", "apps.accounts", "apps.fraud"]
    assert 'modules = ["apps.customers", "apps.accounts", "apps.fraud"]' in edited
    assert '    "apps.accounts",  # the second\n    "apps.fraud",\n]' in edited
    assert shape.add_to_import_contracts(edited, "fraud") == edited  # a second run changes nothing


def test_a_list_of_several_items_a_line_gets_the_new_one_on_a_line_of_its_own():
    wrapped = PYPROJECT.replace(
        'modules = ["apps.customers", "apps.accounts"]',
        'modules = [\n    "apps.customers", "apps.accounts",\n    "apps.ledger",\n]',
    )
    edited = shape.add_to_import_contracts(wrapped, "fraud")
    assert contracts(edited)[shape.INDEPENDENCE_CONTRACT] == [
        "apps.customers",
        "apps.accounts",
        "apps.ledger",
        "apps.fraud",
    ]
    assert '    "apps.ledger",\n    "apps.fraud",\n]' in edited


def test_a_one_line_list_that_would_grow_past_120_characters_becomes_one_item_a_line():
    long = PYPROJECT.replace(
        '["apps.customers", "apps.accounts"]', "[" + ", ".join(f'"apps.c{i}"' for i in range(10)) + "]"
    )
    edited = shape.add_to_import_contracts(long, "notifications")
    assert contracts(edited)[shape.INDEPENDENCE_CONTRACT][-1] == "apps.notifications"
    assert 'modules = [\n    "apps.c0",\n' in edited
    assert max(len(line) for line in edited.splitlines()) <= 120


def test_a_pyproject_without_the_contracts_is_refused():
    with pytest.raises(shape.ShapeError):
        shape.add_to_import_contracts("[tool.importlinter]\n", "fraud")


def test_registering_adds_one_line_each_after_the_other_contexts():
    settings = (ROOT / "config" / "settings.py").read_text()
    urls = (ROOT / "config" / "urls.py").read_text()
    installed = shape.register_in_settings(settings, "loyalty")
    included = shape.register_in_urls(urls, "loyalty")
    assert installed.count("\n") == settings.count("\n") + 1
    installed_apps = settings[settings.index("INSTALLED_APPS = [") :].split("]", 1)[0]
    last_context = [line for line in installed_apps.splitlines() if line.strip().startswith('"apps.')][-1]
    assert f'{last_context}\n    "apps.loyalty",\n]' in installed
    assert '    path("", include("apps.loyalty.api.urls")),\n]' in included
    assert shape.register_in_settings(installed, "loyalty") == installed
    assert shape.register_in_urls(included, "loyalty") == included


@pytest.mark.parametrize("name", ["Fraud", "2fa", "fraud-review", "class", ""])
def test_a_name_that_is_not_a_python_identifier_in_lower_case_is_refused(name):
    with pytest.raises(shape.ShapeError):
        shape.check_name(name)


def test_a_label_already_installed_is_refused(tmp_path):
    with pytest.raises(CommandError, match="already the label"):
        call_command("startcontext", "ledger", "--root", str(tmp_path))


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository's code, settings and test setup, with a context generated in it."""
    root = tmp_path_factory.mktemp("checkout")
    for name in TREE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, root / name)
    call_command("startcontext", "loyalty_points", "--root", str(root), "--register", stdout=io.StringIO())
    return root


def run(checkout: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "OIDC_ISSUER", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(PYTHONPATH=str(checkout), FINTECH_VAR_DIR=str(checkout / "var"))
    return subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_the_generated_context_has_every_file_of_the_shape(checkout):
    home = checkout / "apps" / "loyalty_points"
    assert sorted(str(path.relative_to(home)) for path in home.rglob("*.py")) == sorted(
        part.path for part in shape.PARTS
    )
    assert 'label = "loyalty_points"' in (home / "apps.py").read_text()


def test_the_generated_context_keeps_the_import_contracts(checkout):
    result = run(checkout, str(BIN / "lint-imports"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken" in result.stdout
    assert "apps.loyalty_points" in contracts((checkout / "pyproject.toml").read_text())[shape.INDEPENDENCE_CONTRACT]


def test_a_view_of_the_generated_context_reaching_another_context_breaks_the_contract(checkout):
    views = checkout / "apps" / "loyalty_points" / "api" / "views.py"
    original = views.read_text()
    views.write_text(original + "\nfrom apps.ledger import public  # noqa: F401, E402\n")
    try:
        result = run(checkout, str(BIN / "lint-imports"))
    finally:
        views.write_text(original)
    assert result.returncode != 0
    assert "apps.loyalty_points.api.views -> apps.ledger.public" in result.stdout


def test_the_generated_context_passes_ruff(checkout):
    home = "apps/loyalty_points"
    for command in ((str(BIN / "ruff"), "check", home), (str(BIN / "ruff"), "format", "--check", home)):
        result = run(checkout, *command)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_test_collector_finds_and_runs_the_generated_tests(checkout):
    collected = run(
        checkout,
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--collect-only",
        "-q",
        "apps/loyalty_points",
    )
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert (
        "apps/loyalty_points/tests/test_handlers.py::test_every_handler_of_the_context_is_named_for_it"
        in collected.stdout
    )
    ran = run(checkout, sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "apps/loyalty_points")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "1 passed" in ran.stdout


def test_the_registered_context_is_installed_and_needs_no_migration(checkout):
    result = run(checkout, sys.executable, "manage.py", "makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    shown = run(
        checkout,
        sys.executable,
        "manage.py",
        "shell",
        "-c",
        "from django.apps import apps; print(apps.get_app_config('loyalty_points').name)",
    )
    assert shown.stdout.strip().splitlines()[-1] == "apps.loyalty_points", shown.stderr


def test_an_existing_context_is_never_overwritten(checkout):
    before = (checkout / "apps" / "loyalty_points" / "apps.py").read_text()
    with pytest.raises(CommandError, match="exists already"):
        call_command("startcontext", "loyalty_points", "--root", str(checkout))
    assert (checkout / "apps" / "loyalty_points" / "apps.py").read_text() == before
