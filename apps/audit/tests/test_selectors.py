import pytest

from apps.audit.models import GENESIS_HASH
from apps.audit.selectors import audit_head, audit_verify
from apps.audit.services import audit_append
from apps.audit.tests import tampering

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain():
    return [
        audit_append(action=f"POST /api/v1/things/{n}", actor=f"user-{n}", actor_type="staff", outcome=201)
        for n in range(1, 8)
    ]


def problems(**kwargs):
    report = audit_verify(**kwargs)
    assert not report.ok
    return "\n".join(report.problems)


def test_an_empty_chain_is_intact():
    report = audit_verify()
    assert report.ok
    assert (report.records_checked, report.head_seq, report.head_hash) == (0, 0, GENESIS_HASH)
    assert audit_head() == (0, GENESIS_HASH)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 100])
def test_an_untouched_chain_is_intact_whatever_the_chunk_size(chain, chunk_size):
    report = audit_verify(chunk_size=chunk_size)
    assert report.ok, report.problems
    assert (report.records_checked, report.head_seq, report.head_hash) == (7, 7, chain[-1].hash)
    assert audit_head() == (7, chain[-1].hash)


@pytest.mark.parametrize("chunk_size", [1, 3, 100])
def test_a_changed_record_is_found(chain, chunk_size):
    tampering.change(4, actor="mallory")
    report = audit_verify(chunk_size=chunk_size)
    assert report.problems == ["seq 4: its fields do not match its hash: the record was changed (or moved)"]


def test_a_changed_record_given_a_matching_hash_breaks_the_next_link(chain):
    tampering.change(4, rehash=True, outcome=200)
    found = problems()
    assert "seq 5: follows a record that is not in the table" in found
    assert "seq 4" not in found.replace("not seq 4", "")  # seq 4 itself is self-consistent now


@pytest.mark.parametrize("chunk_size", [1, 3, 100])
def test_a_deleted_record_is_found(chain, chunk_size):
    tampering.delete(3)
    found = problems(chunk_size=chunk_size)
    assert "seq 3 missing: 1 record(s) deleted" in found
    assert "seq 4: follows a record that is not in the table" in found


def test_deleted_records_at_the_start_are_found(chain):
    tampering.delete(1, 2)
    assert "seq 1 to 2 missing: 2 record(s) deleted" in problems()


def test_records_cut_off_the_end_are_found_only_against_an_anchor(chain):
    tampering.delete(7)
    assert audit_verify().ok  # a shorter chain is still a chain: the head must be kept elsewhere
    found = problems(anchors=[(7, chain[-1].hash)])
    assert "anchor seq 7" in found
    assert "records at its end were deleted" in found


def test_a_chain_rewritten_from_a_record_on_is_found_against_an_anchor(chain):
    for seq in range(5, 8):
        tampering.change(seq, rehash=True, actor="mallory")
        if seq < 7:
            tampering.change(seq + 1, rehash=True, prev_hash=tampering.values_of(seq)["hash"])
    assert audit_verify().ok  # rewritten consistently to the head: the hashes alone cannot tell
    assert "seq 7: hash" in problems(anchors=[(7, chain[-1].hash)])
    assert audit_verify(anchors=[(4, chain[3].hash)]).ok


def test_records_with_swapped_sequence_numbers_are_found_reordered(chain):
    tampering.swap_sequence_numbers(3, 4)
    found = problems()
    assert "seq 3: follows seq 4 (which comes after it), not seq 2: records were reordered" in found
    assert "seq 4: follows seq 2 (an earlier record), not seq 3: records were reordered" in found


def test_records_with_swapped_contents_are_found_reordered(chain):
    tampering.swap_contents(5, 6)
    found = problems()
    assert "seq 5: follows seq 6 (which comes after it), not seq 4: records were reordered" in found
    assert "seq 6: follows seq 4 (an earlier record), not seq 5: records were reordered" in found


def test_the_report_is_capped(chain):
    for seq in range(1, 8):
        tampering.change(seq, actor="mallory")
    report = audit_verify(max_problems=3)
    assert len(report.problems) == 3
    assert report.problems_left_out == 4
