from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit.selectors import audit_verify


def _anchor(value: str) -> tuple[int, str]:
    seq, _, digest = value.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise ValueError(value)
    return int(seq), digest.lower()


class Command(BaseCommand):
    help = "Prove the audit trail: one unbroken hash chain, no record changed, deleted or reordered."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--chunk-size", type=int, default=2_000)
        parser.add_argument(
            "--anchor",
            type=_anchor,
            action="append",
            default=[],
            metavar="SEQ:HASH",
            help="A head printed by an earlier run (kept outside the database): it must still be in the chain.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit_verify(chunk_size=options["chunk_size"], anchors=options["anchor"])
        self.stdout.write(f"checked {report.records_checked} audit records")
        if report.ok:
            self.stdout.write(f"head {report.head_seq}:{report.head_hash}")
            self.stdout.write(self.style.SUCCESS("the audit chain is intact"))
            return
        for problem in report.problems:
            self.stdout.write(self.style.ERROR(f"  - {problem}"))
        if report.problems_left_out:
            self.stdout.write(self.style.ERROR(f"  ... and {report.problems_left_out} more"))
        total = len(report.problems) + report.problems_left_out
        raise CommandError(f"the audit chain is broken: {total} problem(s)")
