"""The generated block in hand-written ADRs: replaced in place, appended once, rest untouched."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from adrbench.reports.markers import EVIDENCE, INDEX, MarkerError, find_block, replace_block

BEGIN, END = EVIDENCE.begin, EVIDENCE.end


def test_missing_block_is_appended_once_after_a_blank_line() -> None:
    # GIVEN an ADR without a block
    text = "# ADR-0002\n\nWe skip QLoRA.\n"
    # WHEN the block is set twice
    once = replace_block(text, "link v1\n", EVIDENCE)
    twice = replace_block(once, "link v2\n", EVIDENCE)
    # THEN it is appended once at the end, and the second run replaces it
    assert once == f"# ADR-0002\n\nWe skip QLoRA.\n\n{BEGIN}\nlink v1\n{END}\n"
    assert twice == f"# ADR-0002\n\nWe skip QLoRA.\n\n{BEGIN}\nlink v2\n{END}\n"


def test_file_without_final_newline_keeps_its_last_line_intact() -> None:
    # GIVEN text whose last line has no newline
    # WHEN the block is appended
    result = replace_block("last line", "body", EVIDENCE)
    # THEN the last line is kept as is and the block starts after a blank line
    assert result == f"last line\n\n{BEGIN}\nbody\n{END}\n"


def test_block_content_is_replaced_and_crlf_outside_it_is_kept() -> None:
    # GIVEN a Windows-style ADR with a block in the middle
    text = f"Intro\r\n{BEGIN}\r\nold\r\nstale\r\n{END}\r\nOutro\r\n"
    # WHEN the block is replaced
    result = replace_block(text, "new\n", EVIDENCE)
    # THEN only the lines between the markers change
    assert result == f"Intro\r\n{BEGIN}\r\nnew\n{END}\r\nOutro\r\n"


def test_marker_quoted_inside_a_sentence_is_not_a_marker() -> None:
    # GIVEN prose that mentions the marker mid-line
    text = f"Put `{BEGIN}` on its own line.\n"
    # WHEN looking for the block
    # THEN there is none, and setting it appends one
    assert find_block(text, EVIDENCE) is None
    assert replace_block(text, "x\n", EVIDENCE) == f"{text}\n{BEGIN}\nx\n{END}\n"


def test_blocks_with_different_names_are_independent() -> None:
    # GIVEN a file with an index block
    text = replace_block("# ADRs\n", "table\n", INDEX)
    # WHEN an evidence block is set
    result = replace_block(text, "link\n", EVIDENCE)
    # THEN the index block is untouched
    assert result == f"# ADRs\n\n{INDEX.begin}\ntable\n{INDEX.end}\n\n{BEGIN}\nlink\n{END}\n"


def test_begin_without_end_names_file_line_and_fix_with_a_caret() -> None:
    # GIVEN a block whose end marker was deleted
    text = f"Title\n  {BEGIN}\nbody\n"
    # WHEN the block is replaced
    with pytest.raises(MarkerError) as info:
        replace_block(text, "x", EVIDENCE, path="adr/0002-x.md")
    # THEN the error points at the begin marker
    assert str(info.value) == (
        "adr/0002-x.md:2: begin marker without end; keep exactly one "
        "'<!-- adrbench:evidence -->' line followed by one '<!-- /adrbench:evidence -->' line, "
        "or delete both and rerun `adrbench report`\n"
        "      <!-- adrbench:evidence -->\n"
        "      ^^^^^^^^^^^^^^^^^^^^^^^^^^"
    )
    assert (info.value.path, info.value.line) == ("adr/0002-x.md", 2)


def test_end_before_begin_is_an_error_at_the_end_marker() -> None:
    # GIVEN markers in the wrong order
    text = f"{END}\n{BEGIN}\n"
    # WHEN the block is looked up
    with pytest.raises(MarkerError) as info:
        find_block(text, EVIDENCE, path="a.md")
    # THEN the end marker's line is named
    assert str(info.value).startswith("a.md:1: end marker before begin; keep exactly one")


def test_second_block_is_an_error_at_the_second_begin() -> None:
    # GIVEN two blocks (e.g. a copy-paste)
    text = f"{BEGIN}\n{END}\n{BEGIN}\n{END}\n"
    # WHEN the block is looked up
    with pytest.raises(MarkerError) as info:
        find_block(text, EVIDENCE, path="a.md")
    # THEN the second begin marker is named
    assert str(info.value).startswith("a.md:3: second begin marker; keep exactly one")


# Arbitrary text: any characters, any line endings, and marker text mid-line (a marker line of its
# own is filtered out by ``assume``).
_text = st.lists(
    st.characters(exclude_categories=["Cs"])
    | st.sampled_from(["\n", "\r\n", "\r", "<!--", "-->", f"x {BEGIN}", f"{END} y"]),
    max_size=60,
).map("".join)


def _has_marker_line(text: str) -> bool:
    return any(line.strip() in (BEGIN, END) for line in text.splitlines())


@given(before=_text, old=_text, after=_text, body=_text)
def test_text_around_the_block_survives_regeneration_unchanged(
    before: str, old: str, after: str, body: str
) -> None:
    # GIVEN arbitrary ADR text around an existing block, split on line boundaries
    assume(not any(_has_marker_line(t) for t in (before, old, after, body)))
    prefix = before if before.endswith(("\n", "\r")) or not before else before + "\n"
    content = old if old.endswith("\n") or not old else old + "\n"
    document = f"{prefix}{BEGIN}\n{content}{END}\n{after}"
    assume(find_block(document, EVIDENCE) is not None)
    # WHEN the block is regenerated (twice)
    once = replace_block(document, body, EVIDENCE)
    twice = replace_block(once, body, EVIDENCE)
    # THEN the text before and after is byte-identical and the second run changes nothing
    expected_body = body if body.endswith("\n") or not body else body + "\n"
    assert once == f"{prefix}{BEGIN}\n{expected_body}{END}\n{after}"
    assert twice == once


@given(text=_text, body=_text)
def test_text_without_a_block_is_kept_as_a_prefix_and_the_block_is_added_once(
    text: str, body: str
) -> None:
    # GIVEN arbitrary ADR text without a block
    assume(not _has_marker_line(text) and not _has_marker_line(body))
    # WHEN the block is set twice
    once = replace_block(text, body, EVIDENCE)
    twice = replace_block(once, body, EVIDENCE)
    # THEN the original text is an untouched prefix, and there is exactly one block
    assert once.startswith(text)
    assert twice == once
    assert [line.strip() for line in once.splitlines()].count(BEGIN) == 1
