"""The one order-marker rule that find-before-create and reconciliation rely on for exactly-once."""

from __future__ import annotations

import pytest

from orderflow.order_marker import carries_marker, marked_order_ids, marker

# A known Salesforce pair: the 15-character id and its 18-character case-safe form.
ID15 = "001A0000006Vm9r"
ID18 = "001A0000006Vm9rIAC"
# An Order id as the REST API returns it (the sandbox's ids are of this shape).
ORDER = "8015g000000pnfqAAA"


def test_marker_is_the_note_add_order_writes():
    assert marker(ORDER) == "sfOrderId=8015g000000pnfqAAA"


@pytest.mark.parametrize("bad", ["", "801 x", "801-1", "sfOrderId=801", None])
def test_bad_order_id_is_rejected_naming_the_field(bad):
    with pytest.raises(ValueError, match="order_id"):
        marker(bad)
    with pytest.raises(ValueError, match="order_id"):
        carries_marker("sfOrderId=801", bad)


def test_exact_marker_matches():
    assert carries_marker(f"sfOrderId={ORDER}", ORDER)
    assert marked_order_ids(f"sfOrderId={ORDER}") == [ORDER]


def test_15_char_id_and_its_18_char_form_are_the_same_record():
    assert carries_marker(f"sfOrderId={ID15}", ID18)
    assert carries_marker(f"sfOrderId={ID18}", ID15)
    assert marked_order_ids(f"sfOrderId={ID15}") == [ID18]  # reconciliation compares with API ids
    assert marked_order_ids(f"sfOrderId={ID15} sfOrderId={ID18}") == [ID18]


def test_18_char_suffix_is_case_insensitive_but_the_15_chars_are_not():
    assert carries_marker(f"sfOrderId={ID15}iac", ID18)
    assert not carries_marker(f"sfOrderId={ID15.lower()}", ID15)
    assert not carries_marker(f"sfOrderId={ID15.swapcase()}IAC", ID18)


def test_15_char_id_does_not_match_another_18_char_id_starting_with_it():
    other18 = ID15 + "AAA"  # a wrong checksum: a different id
    assert not carries_marker(f"sfOrderId={other18}", ID15)
    assert not carries_marker(f"sfOrderId={ID15}", other18)
    # the case of the old tests: 801AAAAAAAAAAAA's checksum is Y55, so ...AAA is another id
    assert not carries_marker("sfOrderId=801AAAAAAAAAAAAAAA", "801AAAAAAAAAAAA")
    assert not carries_marker("sfOrderId=801AAAAAAAAAAAA", "801AAAAAAAAAAAAAAA")


def test_a_longer_or_shorter_id_is_another_order():
    assert not carries_marker(f"sfOrderId={ORDER}B", ORDER)
    assert not carries_marker(f"sfOrderId={ORDER}", ORDER + "B")
    assert not carries_marker(f"sfOrderId={ORDER}", ORDER[:-1])
    assert marked_order_ids(f"sfOrderId={ORDER}B") == [ORDER + "B"]


@pytest.mark.parametrize("after", [",", ";", "\n", "\r\n", " ", ".", "_", "-", ")", "&x=1"])
def test_id_ends_at_the_first_non_alphanumeric_character(after):
    notes = f"sfOrderId={ORDER}{after}more"
    assert carries_marker(notes, ORDER)
    assert marked_order_ids(notes) == [ORDER]


def test_marker_among_other_text():
    notes = f"imported by ops 2024-05-01\nsfOrderId={ORDER}; see ticket #42\n"
    assert carries_marker(notes, ORDER)
    assert carries_marker(f"x; sfOrderId={ORDER}\nmore", ORDER)
    assert carries_marker(f"(sfOrderId={ORDER})", ORDER)


def test_key_must_stand_alone_and_is_case_sensitive():
    assert not carries_marker(f"xsfOrderId={ORDER}", ORDER)
    assert not carries_marker(f"old_sfOrderId={ORDER}", ORDER)
    assert not carries_marker(f"sforderid={ORDER}", ORDER)
    assert not carries_marker(f"sfOrderId = {ORDER}", ORDER)
    assert not carries_marker(f"Order {ORDER}", ORDER)  # the bare id is no marker
    assert marked_order_ids("sfOrderId=") == []
    assert marked_order_ids("sfOrderId=,801x") == []


def test_several_markers():
    other = "8015g0000000003AAA"
    notes = f"sfOrderId={ORDER}, sfOrderId={other}\nsfOrderId={ORDER}"
    assert marked_order_ids(notes) == [ORDER, other]  # in order, without repeats
    assert carries_marker(notes, ORDER) and carries_marker(notes, other)
    assert not carries_marker(notes, "8015g0000000004AAA")


@pytest.mark.parametrize("notes", [None, "", "no marker here"])
def test_notes_without_a_marker(notes):
    assert marked_order_ids(notes) == []
    assert not carries_marker(notes, ORDER)
