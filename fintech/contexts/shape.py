"""The shape of a bounded context: the files every app under `apps/` has, what each holds, and
the edits that make a new one part of the bank (import-linter contracts, INSTALLED_APPS, the
API's URLs). `manage.py startcontext <name>` lays it out; tests/test_context_shape.py holds the
existing contexts to it; docs/architecture.md has the table.
"""

from __future__ import annotations

import ast
import keyword
import re
import tomllib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from string import Template

NAME = re.compile(r"^[a-z][a-z0-9_]*$")

INDEPENDENCE_CONTRACT = "Contexts are independent"
LAYERS_CONTRACT = "Inside a context: interfaces > public > services > selectors > models"


@dataclass(frozen=True)
class Part:
    path: str  # relative to apps/<name>/
    holds: str  # what the file is for (docs/architecture.md's table says the same)
    every_context: bool  # False: a context has it once it has something to put there
    template: str = ""


class ShapeError(ValueError):
    """The context cannot be laid out as asked (a bad name, or it exists already)."""


def _doc(text: str) -> str:
    return f'"""{text}"""\n'


PARTS: tuple[Part, ...] = (
    Part("__init__.py", "The package", True),
    Part(
        "apps.py",
        'Its AppConfig: name "apps.<name>", label "<name>"; ready() imports the handlers',
        True,
        """from django.apps import AppConfig


class ${cls}Config(AppConfig):
    name = "apps.${name}"
    label = "${name}"
    verbose_name = "${title}"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.${name} import handlers  # noqa: F401 - registers the subscriptions
""",
    ),
    Part(
        "models.py",
        "Its tables, nobody else's: another context stores a UUID, never a ForeignKey",
        True,
        _doc("The ${name} context's tables. Other contexts keep the UUIDs of its rows, never a ForeignKey."),
    ),
    Part(
        "services.py",
        "The commands: the only code that writes, inside `unit_of_work()`, publishing its events",
        True,
        _doc(
            "Commands of the ${name} context: the only code that writes. Each opens `unit_of_work()`\n"
            "(outbox.unit_of_work), takes `now` from the caller and publishes its events with `publish()`\n"
            "(outbox.publisher); keyword-only, typed, verbs on nouns."
        ),
    ),
    Part(
        "selectors.py",
        "The queries: reads only",
        True,
        _doc("Queries of the ${name} context: reads only."),
    ),
    Part(
        "errors.py",
        "Its refusals: `fintech.errors` subclasses with a stable `code` (problem+json)",
        False,
        _doc(
            "Refusals of the ${name} context: subclasses of fintech.errors (ValidationFailed, NotFound,\n"
            "Conflict, Unprocessable, ...) with a stable `code`, which the API answers as problem+json."
        ),
    ),
    Part(
        "events.py",
        "The events it publishes: `DomainEvent` dataclasses, each with its JSON Schema",
        False,
        _doc(
            "Events the ${name} context publishes: frozen dataclasses subclassing\n"
            'fintech.events.DomainEvent with `source = "${name}"`, each with its JSON Schema in\n'
            "fintech/events/schemas/<type>/v1.json. fintech/events/tests/test_schemas.py imports this\n"
            "module and holds every class to its schema."
        ),
    ),
    Part(
        "handlers.py",
        'Bus subscribers only: `@subscribe(..., name="<name>.<what_it_does>")`',
        False,
        _doc(
            "What the ${name} context does on other contexts' events: functions registered with\n"
            '`@subscribe("<type>", name="${name}.<what_it_does>")` (fintech.bus) and nothing else. They\n'
            "read `event.data`, call this context's services, and tolerate duplicates and reordering;\n"
            "`manage.py consume --group ${name}` runs them from Kafka."
        ),
    ),
    Part(
        "public.py",
        "What other contexts may ask it: plain data in and out, called from their services and selectors",
        False,
        _doc(
            "What other contexts may ask the ${name} context synchronously: functions taking and\n"
            "returning plain data. Only their services and selectors call them (pyproject.toml)."
        ),
    ),
    Part("api/__init__.py", "The REST interface: DRF lives only here", False),
    Part(
        "api/serializers.py",
        "Input serializers (shape only) and output serializers",
        False,
        _doc("What the ${name} API reads (input serializers check the shape) and answers."),
    ),
    Part(
        "api/views.py",
        "Thin views: parse, call one service or selector, render; `required_scopes` on each",
        False,
        _doc(
            "The ${name} API: each view parses with an input serializer, calls one service or selector\n"
            "and renders with an output serializer; `required_scopes` names the scopes of each method."
        ),
    ),
    Part(
        "api/urls.py",
        "Its paths, included under `/api/v1/` by config/urls.py",
        False,
        """from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
""",
    ),
    Part(
        "admin.py",
        "The back office: `ReadOnly` for rows only services change; actions call services",
        True,
        _doc(
            "The ${name} context in the back office. Rows that change only through the services use\n"
            "fintech.backoffice.ReadOnly; an admin action calls a service."
        ),
    ),
    Part("migrations/__init__.py", "Its migrations", True),
    Part("tests/__init__.py", "Its own tests, importing no other context's code", True),
    Part(
        "tests/test_services.py",
        "Its commands and their refusals",
        False,
        _doc("The ${name} context's commands: one test per rule, asserting outcomes (rows, events, errors)."),
    ),
    Part(
        "tests/test_api.py",
        "Its endpoints: status codes, problem codes, who may call them",
        False,
        _doc(
            "The ${name} API: status codes and problem codes. Who may call what is\n"
            "tests/test_authorization_matrix.py's."
        ),
    ),
    Part(
        "tests/test_handlers.py",
        "Its handlers, fed events as the bus hands them over",
        False,
        _doc("The ${name} context's handlers, fed events as the bus hands them over.")
        + """
from fintech import bus


def test_every_handler_of_the_context_is_named_for_it():
    # `consume --group ${name}` runs the handlers named ${name}.*, and no other.
    module = "apps.${name}.handlers"
    ours = [sub.name for sub in bus.all_subscriptions() if sub.handler.__module__ == module]
    assert all(name.startswith("${name}.") for name in ours), ours
""",
    ),
)

# Where else a context may keep code, when it has such code.
OTHER_PLACES = {
    "management/commands/": "Its management commands",
    "tasks.py": "Its Celery tasks",
    "receivers.py": "Django signal receivers (not bus handlers)",
}


def check_name(name: str, *, taken_labels: Collection[str] = ()) -> None:
    if not NAME.match(name) or keyword.iskeyword(name):
        raise ShapeError(f"{name!r} is not a context name: lower case letters, digits and _, starting with a letter")
    if name in taken_labels:
        raise ShapeError(f"{name!r} is already the label of an installed app")


def files(name: str) -> dict[str, str]:
    """The new context's files, by path under apps/<name>/."""
    values = {"name": name, "cls": name.title().replace("_", ""), "title": name.replace("_", " ").capitalize()}
    return {part.path: Template(part.template).substitute(values) for part in PARTS}


def lay_out(root: Path, name: str) -> list[Path]:
    """Write apps/<name>/ under `root`; returns the files written. Refuses an existing context."""
    home = root / "apps" / name
    if home.exists():
        raise ShapeError(f"{home} exists already")
    written = []
    for relative, text in files(name).items():
        path = home / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


# -- the edits that make it part of the bank ----------------------------------------------------


def _list_span(text: str, start: int) -> tuple[int, int]:
    """The [begin, end) of the TOML/Python list that opens at the first "[" after `start`."""
    begin = text.index("[", start)
    depth = 0
    for index in range(begin, len(text)):
        if text[index] == "[":
            depth += 1
        elif text[index] == "]":
            depth -= 1
            if depth == 0:
                return begin, index + 1
    raise ShapeError("unbalanced list")


def _with_item(text: str, begin: int, end: int, item: str) -> str:
    """The list text[begin:end] with `item` appended, in the list's own style: on one line while
    that fits in 120 characters, else one item a line."""
    inside = text[begin + 1 : end - 1]
    if "\n" not in inside:
        items = [part.strip() for part in inside.split(",") if part.strip()] + [item]
        line_start = text.rfind("\n", 0, begin) + 1
        single = f"[{', '.join(items)}]"
        if begin - line_start + len(single) <= 120:
            return text[:begin] + single + text[end:]
        return text[:begin] + "[\n" + "".join(f"    {value},\n" for value in items) + "]" + text[end:]
    kept = inside.rstrip()
    if not kept:
        return f"{text[: begin + 1]}\n    {item},\n]{text[end:]}"
    head, _, last = kept.rpartition("\n")
    code, hash_, comment = last.partition("#")  # the items are module names: no "#" in them
    if code.strip() and not code.rstrip().endswith(","):
        last = f"{code.rstrip()},{' ' * (len(code) - len(code.rstrip()))}{hash_}{comment}"
    return f"{text[: begin + 1]}{head}\n{last}\n    {item},\n]{text[end:]}"


def _contract_key(text: str, contract: str, key: str) -> int:
    found = text.find(f'name = "{contract}"')
    if found < 0:
        raise ShapeError(f"pyproject.toml has no import-linter contract {contract!r}")
    at = re.compile(rf"^{key} = ", re.M).search(text, found)
    next_contract = text.find("[[tool.importlinter.contracts]]", found)
    if at is None or (next_contract >= 0 and at.start() > next_contract):
        raise ShapeError(f"the contract {contract!r} has no {key}")
    return at.start()


def add_to_import_contracts(pyproject: str, name: str) -> str:
    """pyproject.toml with apps.<name> among the independent contexts and the layered ones."""
    module = f"apps.{name}"
    for contract, key in ((INDEPENDENCE_CONTRACT, "modules"), (LAYERS_CONTRACT, "containers")):
        begin, end = _list_span(pyproject, _contract_key(pyproject, contract, key))
        if f'"{module}"' not in pyproject[begin:end]:
            pyproject = _with_item(pyproject, begin, end, f'"{module}"')
    try:
        contracts = tomllib.loads(pyproject)["tool"]["importlinter"]["contracts"]
    except tomllib.TOMLDecodeError as error:
        raise ShapeError(f"pyproject.toml would not parse after the edit: {error}") from None
    lists = {c["name"]: c.get("modules") or c.get("containers") for c in contracts}
    if module not in lists[INDEPENDENCE_CONTRACT] or module not in lists[LAYERS_CONTRACT]:
        raise ShapeError("pyproject.toml was not edited as intended")
    return pyproject


def _assigned_list(source: str, variable: str) -> ast.List:
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.List)):
            continue
        if any(isinstance(target, ast.Name) and target.id == variable for target in node.targets):
            return node.value
    raise ShapeError(f"no list assigned to {variable}")


def _insert_line(source: str, variable: str, line: str, after: str | None) -> str:
    """`line` inserted into the list literal assigned to `variable`: after its last line that
    contains `after`, or as its last item."""
    target = _assigned_list(source, variable)
    lines = source.splitlines(keepends=True)
    first, last = target.lineno - 1, (target.end_lineno or target.lineno) - 1
    place = last
    if after is not None:
        matching = [index for index in range(first, last) if after in lines[index]]
        place = matching[-1] + 1 if matching else last
    sample = lines[first + 1] if first + 1 < last else "    "
    indent = sample[: len(sample) - len(sample.lstrip())] or "    "
    lines.insert(place, f"{indent}{line}\n")
    return "".join(lines)


def installed_app_line(name: str) -> str:
    return f'"apps.{name}",'


def api_urls_line(name: str) -> str:
    return f'path("", include("apps.{name}.api.urls")),'


def register_in_settings(settings_source: str, name: str) -> str:
    """config/settings.py with apps.<name> in INSTALLED_APPS, after the other contexts."""
    if f'"apps.{name}"' in settings_source:
        return settings_source
    edited = _insert_line(settings_source, "INSTALLED_APPS", installed_app_line(name), after='"apps.')
    if f"apps.{name}" not in [getattr(e, "value", None) for e in _assigned_list(edited, "INSTALLED_APPS").elts]:
        raise ShapeError("config/settings.py was not edited as intended")
    return edited


def register_in_urls(urls_source: str, name: str) -> str:
    """config/urls.py with the context's API included under /api/v1/."""
    if f'"apps.{name}.api.urls"' in urls_source:
        return urls_source
    edited = _insert_line(urls_source, "api_v1", api_urls_line(name), after=None)
    if f'"apps.{name}.api.urls"' not in ast.unparse(_assigned_list(edited, "api_v1")).replace("'", '"'):
        raise ShapeError("config/urls.py was not edited as intended")
    return edited
