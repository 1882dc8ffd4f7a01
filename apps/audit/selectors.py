"""Reading the audit chain: its head, and the proof that nothing in it was changed, deleted or
moved, walked in sequence order in chunks so it works on millions of records."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from apps.audit.models import GENESIS_HASH, HASHED_FIELDS, AuditRecord, record_hash


@dataclass
class ChainReport:
    records_checked: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    problems: list[str] = field(default_factory=list)
    problems_left_out: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Findings:
    limit: int
    found: list[tuple[int, str]] = field(default_factory=list)
    left_out: int = 0

    def add(self, seq: int, problem: str) -> None:
        if len(self.found) < self.limit:
            self.found.append((seq, problem))
        else:
            self.left_out += 1


def audit_head() -> tuple[int, str]:
    """The last record's sequence number and hash; (0, GENESIS_HASH) for an empty chain."""
    head = AuditRecord.objects.order_by("-seq").values_list("seq", "hash").first()
    return head if head else (0, GENESIS_HASH)


def audit_verify(
    *, chunk_size: int = 2_000, anchors: Iterable[tuple[int, str]] = (), max_problems: int = 100
) -> ChainReport:
    """Walk the chain from seq 1 and report every place where it does not hold:

    - a record whose fields do not hash to its stored hash was changed (or moved: the sequence
      number is hashed too);
    - a missing sequence number is a deleted record;
    - a record whose prev_hash is not its predecessor's hash follows the wrong record: if the
      hash it names is elsewhere in the table the records were reordered, if it is nowhere the
      record it followed was deleted or changed and re-hashed;
    - an anchor (a sequence number and hash written down earlier, e.g. a previous head) that no
      longer matches: the only way to catch the chain's tail cut off, or rewritten whole.
    """
    report = ChainReport()
    findings = _Findings(limit=max_problems)
    expected_anchors = dict(anchors)
    prev_seq, prev_hash = 0, GENESIS_HASH
    columns = (*HASHED_FIELDS, "hash")
    while True:
        chunk = list(AuditRecord.objects.filter(seq__gt=prev_seq).order_by("seq").values_list(*columns)[:chunk_size])
        if not chunk:
            break
        for row in chunk:
            fields = dict(zip(columns, row, strict=True))
            seq, stored = fields["seq"], fields["hash"]
            if seq != prev_seq + 1:
                missing = f"seq {prev_seq + 1}" if seq == prev_seq + 2 else f"seq {prev_seq + 1} to {seq - 1}"
                findings.add(seq, f"{missing} missing: {seq - prev_seq - 1} record(s) deleted")
            if record_hash(fields) != stored:
                findings.add(seq, f"seq {seq}: its fields do not match its hash: the record was changed (or moved)")
            if fields["prev_hash"] != prev_hash:
                findings.add(seq, _broken_link(seq, prev_seq, fields["prev_hash"]))
            anchor = expected_anchors.pop(seq, None)
            if anchor is not None and anchor != stored:
                findings.add(seq, f"seq {seq}: hash {stored} but the anchor says {anchor}: the chain was rewritten")
            prev_seq, prev_hash = seq, stored
            report.records_checked += 1
    for seq, anchor in sorted(expected_anchors.items()):
        findings.add(seq, f"anchor seq {seq} (hash {anchor}) is not in the chain: records at its end were deleted")
    report.head_seq, report.head_hash = prev_seq, prev_hash
    report.problems = [problem for _, problem in sorted(findings.found, key=lambda item: item[0])]
    report.problems_left_out = findings.left_out
    return report


def _broken_link(seq: int, prev_seq: int, link: str) -> str:
    predecessor = f"seq {prev_seq}" if prev_seq else "the start of the chain"
    if link == GENESIS_HASH:
        return f"seq {seq}: claims to start the chain but follows {predecessor}: records were reordered"
    linked = AuditRecord.objects.filter(hash=link).values_list("seq", flat=True).first()
    if linked is None:
        return (
            f"seq {seq}: follows a record that is not in the table (hash {link[:16]}...), not {predecessor}: "
            "the record before it was deleted, or changed and re-hashed"
        )
    where = "which comes after it" if linked > seq else "an earlier record"
    return f"seq {seq}: follows seq {linked} ({where}), not {predecessor}: records were reordered"
