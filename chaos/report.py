"""The table of a chaos run: printed, kept per scenario in docs/reliability.json, and written
between the markers of docs/reliability.md (the text above them is the document's own)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.checks import Row
from chaos.scenarios import Scenario
from chaos.stack import ROOT

DOC = ROOT / "docs" / "reliability.md"
STORE = ROOT / "docs" / "reliability.json"
BEGIN = "<!-- chaos:begin (written by make chaos; edit the text above, not below) -->"
END = "<!-- chaos:end -->"
HEADER = (
    "scenario",
    "faults struck",
    "requests",
    "transfers",
    "payments",
    "reconcile",
    "events written",
    "on Kafka (distinct)",
    "Kafka duplicates",
    "postings",
    "notifications",
    "provider repeats",
    "5xx to clients",
    "refused or reset connections",
    "process restarts",
    "result",
)


@dataclass(frozen=True)
class Run:
    date: str
    commit: str
    command: str


def cells(row: Row) -> list[str]:
    transfers = ", ".join(f"{count} {status}" for status, count in sorted(row.transfers.items())) or "0"
    payments = ", ".join(f"{count} {status}" for status, count in sorted(row.payments.items())) or "0"
    errors = ", ".join(f"{count}x {what}" for what, count in sorted(row.http_5xx.items())) or "0"
    return [
        row.scenario,
        row.faults,
        str(row.requests),
        transfers,
        payments,
        row.reconcile,
        str(row.events_written),
        str(row.events_on_kafka),
        str(row.kafka_duplicates),
        row.postings,
        row.notifications,
        str(row.provider_repeats),
        errors,
        str(row.connection_errors),
        row.restarts,
        "pass" if row.passed else "**FAIL**",
    ]


def table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _load() -> dict[str, Any]:
    if STORE.exists():
        stored: dict[str, Any] = json.loads(STORE.read_text())
        return stored
    return {"scenarios": {}}


def write(rows: list[Row], scenarios: list[Scenario], run: Run) -> Path:
    """Keep this run's rows beside the earlier runs' other scenarios, and render them all."""
    store = _load()
    for row in rows:
        store["scenarios"][row.scenario] = {
            "cells": cells(row),
            "problems": row.problems,
            "date": run.date,
            "commit": run.commit,
            "command": run.command,
        }
    descriptions = {scenario.name: scenario.what for scenario in scenarios}
    store["descriptions"] = {**store.get("descriptions", {}), **descriptions}
    order = [scenario.name for scenario in scenarios]
    store["order"] = order + [name for name in store.get("order", []) if name not in order]
    STORE.write_text(json.dumps(store, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    text = DOC.read_text() if DOC.exists() else "# Reliability under faults\n"
    generated = render(store)
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head.rstrip("\n") + "\n\n" + generated + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + generated + "\n"
    DOC.write_text(text)
    return DOC


def render(store: dict[str, Any]) -> str:
    names = [name for name in store["order"] if name in store["scenarios"]]
    entries = [store["scenarios"][name] for name in names]
    runs = sorted({(entry["date"], entry["commit"], entry["command"]) for entry in entries})
    lines = [BEGIN, "", "### The scenarios", ""]
    lines += [f"- **{name}**: {store['descriptions'].get(name, '')}" for name in names]
    lines += ["", "### The last run", ""]
    for date, commit, command in runs:
        which = [
            name
            for name, entry in zip(names, entries, strict=True)
            if (entry["date"], entry["commit"]) == (date, commit)
        ]
        scope = "" if len(runs) == 1 else f" ({', '.join(which)})"
        lines.append(f"- {date}, commit `{commit}`, `{command}`{scope}")
    lines += ["", table([entry["cells"] for entry in entries]), ""]
    failing = [(name, entry["problems"]) for name, entry in zip(names, entries, strict=True) if entry["problems"]]
    if failing:
        lines += ["What failed:", ""]
        lines += [f"- **{name}**: {'; '.join(problems)}" for name, problems in failing]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)
