"""The table on stdout and the generated part of docs/benchmarks.md.

The figures of every section are kept in docs/benchmarks.json, so running one section again
(`make bench BENCH_ONLY=ledger`) replaces that section's figures and keeps the others', each
with the date and commit it was measured at. The markdown between the two markers below is
rendered from that file; everything else in docs/benchmarks.md (the relay's history) is prose
that the benchmark never touches.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.harness import Row, Section
from bench.options import SECTIONS, Options

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
STORE = ROOT / "docs" / "benchmarks.json"
BEGIN = "<!-- make bench: generated from docs/benchmarks.json by `python -m bench`; edits below are overwritten -->"
END = "<!-- /make bench -->"

TITLES = {
    "transfers": "1. Full transfer through the services, against django-hordak and the PL/pgSQL floor",
    "statements": "2. SQL statements and commits per transfer",
    "hot": "5. Hot account: 8 clients debiting one account",
    "ledger": "3. Ledger post_transactions, one per call and batches of 1,000",
    "batch": "4. POST /transfers/batch over HTTP",
    "http": "6. HTTP on `make run`'s server: closed loop at 50 connections, open loop at a fixed rate",
    "reads": "7. Balance and statement reads of accounts with 1,000,000 entries",
    "relay": "8. The relay, PostgreSQL to Kafka (bench_relay)",
}


def number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if float(value).is_integer():
        return f"{int(value)}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def verdict(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: ""}[met]


def _rows(rows: list[Row]) -> list[str]:
    lines = [
        "| Figure | Value | Peer | Peer value | Ratio | Target | Met | Notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.figure} | **{number(row.value)}** {row.unit} | {row.peer} | {number(row.peer_value)} | "
            f"{ratio(row.ratio)} | {row.target} | {verdict(row.met)} | {row.note} |"
        )
    return lines


def table(sections: list[Section]) -> str:
    lines: list[str] = []
    for section in sections:
        lines += ["", f"{section.title}  [{section.name}, {section.seconds:.0f} s]"]
        for row in section.rows:
            peer = f"  vs {row.peer}: {number(row.peer_value)}" if row.peer else ""
            parts = [
                f"  {row.figure}: {number(row.value)} {row.unit}{peer}",
                f" ratio {ratio(row.ratio)}" if row.ratio is not None else "",
                f"  target {row.target}: {'met' if row.met else 'NOT met'}" if row.target else "",
            ]
            lines.append("".join(parts))
        lines += [f"  - {note}" for note in section.notes if note.startswith(("FAILED", "NOT", "not available"))]
    return "\n".join(lines)


def _load() -> dict[str, Any]:
    if STORE.exists():
        stored: dict[str, Any] = json.loads(STORE.read_text())
        return stored
    return {"sections": {}}


def write(sections: list[Section], *, options: Options, argv: list[str]) -> Path:
    store = _load()
    for section in sections:
        store["sections"][section.name] = asdict(section)
    STORE.write_text(json.dumps(store, indent=1, sort_keys=True) + "\n")
    generated = render(store)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head.rstrip("\n") + "\n\n" + generated + tail
    else:
        text = text.rstrip("\n") + "\n\n" + generated + "\n"
    DOC.write_text(text)
    return DOC


def render(store: dict[str, Any]) -> str:
    lines = [
        BEGIN,
        "",
        "## The bank against its peers (`make bench`)",
        "",
        "`make bench` runs every section below in one process against the database `fintech_bench` on the "
        "local PostgreSQL 15 (`deploy/local`, never the bank's `fintech`), side by side with its peers: "
        "django-hordak 2.0.0 (a benchmark-only dependency, `requirements-bench.txt`) and a PL/pgSQL floor "
        "shipped in `bench/floor.py`. `make bench BENCH_ONLY=ledger,http` re-runs some sections; "
        "`python -m bench --help` lists the counts. The database, PostgreSQL, the server and the load "
        "generator share the machine's 2 cores, so every figure here is what one 2-core box does with all of "
        "them on it. Each section says the commit and the date it was measured at: these are the figures "
        "of the event spine *before* the optimisation under way.",
        "",
    ]
    for name in SECTIONS:
        data = store["sections"].get(name)
        if not data:
            continue
        rows = [Row(**row) for row in data["rows"]]
        lines += [
            f"### {data['title']}",
            "",
            f"Measured {data['date']} at commit `{data['commit']}` (`make bench BENCH_ONLY={name}`, "
            f"{data['seconds']:.0f} s).",
            "",
        ]
        if rows:
            lines += [*_rows(rows), ""]
        lines += [f"- {note}" for note in data["notes"]]
        for title, listing in data.get("attachments", {}).items():
            lines += ["", "<details><summary>" + title + "</summary>", "", "```text"]
            lines += [item.replace("\n", " ").rstrip()[:160] for item in listing]
            lines += ["```", "", "</details>"]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)
