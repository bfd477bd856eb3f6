"""ADR files as data: MADR 4 front matter plus our keys, with line-precise, collected errors."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adrbench.decisions.adr import (
    EVIDENCE_BEGIN,
    EVIDENCE_END,
    MAX_YAML_DEPTH,
    AdrError,
    lint,
    load_adrs,
    parse_adr,
)

DATA = Path(__file__).parent / "data" / "adr"
REPO_ADRS = Path(__file__).parents[1] / "adr"


def write(directory: Path, name: str, front_matter: str, body: str = "# A decision\n") -> Path:
    path = directory / name
    path.write_text(f"---\n{front_matter}---\n\n{body}", encoding="utf-8")
    return path


def problems_of(path: Path) -> str:
    with pytest.raises(AdrError) as info:
        parse_adr(path)
    return str(info.value)


def lint_messages(paths: list[Path]) -> list[str]:
    return [str(p) for p in lint(paths).problems]


# --- the project's own ADRs ------------------------------------------------------------------


def test_the_project_adrs_load_with_their_claims_triggers_and_premises() -> None:
    # GIVEN the repository's adr/ WHEN loaded THEN the ADRs come back by number with our keys
    adrs = load_adrs(REPO_ADRS)
    assert [a.number for a in adrs] == [1, 2, 3, 4, 5]
    assert (adrs[3].status, adrs[3].supersedes) == ("proposed", (2,))
    qlora = adrs[1]
    assert qlora.status == "accepted"
    assert qlora.date == "2026-02-20"
    assert qlora.evidence == ("finetune_sts/lora", "finetune_sts/qlora", "serve_adapters")
    assert [t.id for t in qlora.revisit_when] == [
        "lora-exceeds-laptop",
        "model-7b",
        "cuda",
        "multi-adapter-serving",
    ]
    assert [t.expression.source for t in qlora.revisit_when] == [
        "estimate.lora_peak_bytes > 8GB",
        "model.parameters >= 7B",
        "env.cuda_available",
        "project.adapters_served > 1",
    ]
    assert [(p.id, p.expression.source) for p in qlora.premises] == [
        ("bnb-needs-cuda", "not probes.bnb_nf4_on_cpu")
    ]
    assert [c.id for c in adrs[0].claims] == [
        "fewer-trainable-params",
        "lora-faster",
        "lora-less-memory",
        "lora-quality",
    ]


def test_load_adrs_ignores_the_index_and_the_appendix(tmp_path: Path) -> None:
    # GIVEN an ADR next to README.md and appendix/ WHEN loaded THEN only the ADR is read
    write(tmp_path, "0001-first.md", "status: accepted\n")
    (tmp_path / "README.md").write_text("# Index\n", encoding="utf-8")
    (tmp_path / "appendix").mkdir()
    write(tmp_path / "appendix", "0001-first-evidence.md", "status: nonsense\n")
    assert [a.path.name for a in load_adrs(tmp_path)] == ["0001-first.md"]


# --- plain MADR ------------------------------------------------------------------------------


def test_a_plain_madr_adr_is_accepted_and_has_no_evidence() -> None:
    # GIVEN a MADR 4 ADR with no adrbench keys WHEN parsed THEN it is valid, with no evidence
    adr = parse_adr(DATA / "plain" / "0004-use-plain-madr.md")
    assert (adr.number, adr.title, adr.status, adr.date) == (
        4,
        "Keep ADRs in MADR 4 format",
        "accepted",
        "2026-03-01",
    )
    assert adr.front_matter["decision-makers"] == ["Platform team"]
    assert adr.has_evidence is False
    assert adr.items == ()


def test_front_matter_is_optional(tmp_path: Path) -> None:
    # GIVEN an ADR with no front matter at all WHEN parsed THEN it has no status and no evidence
    path = tmp_path / "0007-bare.md"
    path.write_text("# Bare decision\n\nText.\n", encoding="utf-8")
    adr = parse_adr(path)
    assert (adr.status, adr.date, adr.has_evidence) == (None, None, False)


def test_unrelated_unknown_keys_are_ignored_like_madr_tools_do(tmp_path: Path) -> None:
    # GIVEN a key neither MADR nor we define WHEN parsed THEN it is kept and not an error
    adr = parse_adr(write(tmp_path, "0001-x.md", "status: accepted\ntags: [ml]\n"))
    assert adr.front_matter["tags"] == ["ml"]


# --- malformed front matter (golden files) ---------------------------------------------------


def test_a_missing_key_names_the_file_line_and_key() -> None:
    # GIVEN a claim without holds_if WHEN parsed THEN the item's line and the key are named
    assert problems_of(DATA / "malformed" / "0001-missing-key.md") == (
        "1 problem in ADRs\n"
        f"{DATA}/malformed/0001-missing-key.md:5: claims[0]: missing key 'holds_if'"
    )


def test_values_of_the_wrong_type_are_all_reported_with_their_lines() -> None:
    # GIVEN three values of the wrong type WHEN parsed THEN all three are reported at once
    path = DATA / "malformed" / "0002-wrong-type.md"
    assert problems_of(path) == (
        "3 problems in ADRs\n"
        f"{path}:4: evidence: expected a list of suite or suite/scenario names, got text "
        "'finetune_sts'\n"
        f"{path}:8: claims[0].holds_if: expected non-empty text, got a boolean True; quote it\n"
        f"{path}:9: premises: expected a list of {{id, text, holds_if}} mappings, got text"
    )


def test_bad_yaml_is_reported_at_its_line_with_a_caret() -> None:
    # GIVEN mis-indented YAML WHEN parsed THEN the error carries PyYAML's line, as a file line
    path = DATA / "malformed" / "0003-bad-yaml.md"
    assert problems_of(path) == (
        "1 problem in ADRs\n"
        f"{path}:7: front matter is not valid YAML: while parsing a block collection, expected "
        "<block end>, but found '<block mapping start>'\n"
        "       holds_if: results.lora.peak_rss_bytes < 4GiB\n"
        "       ^"
    )


# --- schema rules ----------------------------------------------------------------------------


def test_unknown_status_is_a_warning_that_lists_the_allowed_ones(tmp_path: Path) -> None:
    # GIVEN a status MADR does not know WHEN linted THEN it is a warning, and the ADR still loads
    path = write(tmp_path, "0001-x.md", "date: 2026-01-01\nstatus: approved\n")
    result = lint([path])
    assert result.problems == ()
    assert [a.status for a in result.adrs] == ["approved"]
    assert [str(w) for w in result.warnings] == [
        f"{path}:3: warning: status: status 'approved' is not one this project lists (proposed, "
        "rejected, accepted, deprecated); it is still judged. Add it to [tool.adrbench] statuses "
        "in pyproject.toml if it is yours, or use 'superseded by ADR-NNNN'"
    ]
    # AND a project that lists it gets no warning
    assert lint([path], statuses=("approved",)).warnings == ()


def test_a_malformed_date_is_an_error(tmp_path: Path) -> None:
    # GIVEN a date that is not YYYY-MM-DD WHEN parsed THEN it is reported with its line
    path = write(tmp_path, "0001-x.md", "status: accepted\ndate: March 2026\n")
    assert problems_of(path) == (
        f"1 problem in ADRs\n{path}:3: date: expected a date YYYY-MM-DD, got 'March 2026'"
    )


def test_duplicate_ids_within_an_adr_are_errors(tmp_path: Path) -> None:
    # GIVEN a claim and a trigger sharing an id WHEN parsed THEN the second one is reported
    path = write(
        tmp_path,
        "0001-x.md",
        "claims:\n"
        "  - {id: cuda, text: No CUDA, holds_if: not env.cuda_available}\n"
        "revisit_when:\n"
        "  - {id: cuda, text: CUDA arrives, fires_if: env.cuda_available}\n",
    )
    assert problems_of(path) == (
        "1 problem in ADRs\n"
        f"{path}:5: revisit_when[0].id: duplicate id 'cuda' (also claims[0]); ids are unique "
        "within an ADR"
    )


def test_a_trigger_written_with_holds_if_gets_a_hint(tmp_path: Path) -> None:
    # GIVEN a revisit trigger using the claim key WHEN parsed THEN the message says which key
    path = write(
        tmp_path,
        "0001-x.md",
        "revisit_when:\n  - id: cuda\n    text: CUDA arrives\n    holds_if: env.cuda_available\n",
    )
    assert problems_of(path) == (
        "2 problems in ADRs\n"
        f"{path}:5: revisit_when[0]: unknown key 'holds_if'; revisit_when use 'fires_if', not "
        "'holds_if'\n"
        f"{path}:3: revisit_when[0]: missing key 'fires_if'"
    )


def test_a_typo_of_our_keys_is_caught(tmp_path: Path) -> None:
    # GIVEN "revisit-when" instead of "revisit_when" WHEN parsed THEN the typo is named
    path = write(tmp_path, "0001-x.md", "status: accepted\nrevisit-when: []\n")
    assert problems_of(path) == (
        "1 problem in ADRs\n"
        f"{path}:3: revisit-when: unknown key 'revisit-when'; did you mean 'revisit_when'?"
    )


def test_duplicate_yaml_keys_are_errors(tmp_path: Path) -> None:
    # GIVEN a key given twice WHEN parsed THEN it is reported (YAML would keep only the last)
    path = write(tmp_path, "0001-x.md", "status: accepted\nstatus: proposed\n")
    assert problems_of(path) == (
        "1 problem in ADRs\n"
        f"{path}:3: status: duplicate key 'status' (first at line 2); YAML keeps only the last "
        "one, so merge them"
    )


def test_an_expression_error_points_at_its_line_and_column(tmp_path: Path) -> None:
    # GIVEN a trigger with a syntax error WHEN parsed THEN file line, field and caret are shown
    path = write(
        tmp_path,
        "0001-x.md",
        "revisit_when:\n  - id: big\n    text: Big model\n    fires_if: model.parameters => 7B\n",
    )
    assert problems_of(path) == (
        "1 problem in ADRs\n"
        f"{path}:5: revisit_when[0].fires_if: unexpected character '='; use '==' to compare\n"
        "    model.parameters => 7B\n"
        "                     ^"
    )


def test_front_matter_that_never_closes_is_an_error(tmp_path: Path) -> None:
    # GIVEN an opening '---' with no closing one WHEN parsed THEN the fix is named
    path = tmp_path / "0001-x.md"
    path.write_text("---\nstatus: accepted\n# Title\n", encoding="utf-8")
    assert problems_of(path) == (
        "1 problem in ADRs\n"
        f"{path}:1: front matter opened with '---' is never closed; add a '---' line after it"
    )


def test_a_file_name_without_a_number_is_an_error(tmp_path: Path) -> None:
    # GIVEN an ADR file not named NNNN-title.md WHEN parsed THEN the naming rule is given
    path = write(tmp_path, "qlora.md", "status: accepted\n")
    assert problems_of(path) == (
        "1 problem in ADRs\n"
        f"{path}:1: file name 'qlora.md' does not start with a four-digit number; rename it to "
        "NNNN-short-title.md, e.g. 0004-use-bf16.md"
    )


# --- the generated evidence block ------------------------------------------------------------


def test_the_generated_evidence_block_is_ignored(tmp_path: Path) -> None:
    # GIVEN a generated block holding a heading WHEN parsed THEN neither title nor body see it
    body = f"{EVIDENCE_BEGIN}\n# Generated heading\n| a |\n{EVIDENCE_END}\n\n# Real title\n"
    adr = parse_adr(write(tmp_path, "0001-x.md", "status: accepted\n", body))
    assert adr.title == "Real title"
    assert adr.body == f"\n{EVIDENCE_BEGIN}\n{EVIDENCE_END}\n\n# Real title"


def test_an_unclosed_evidence_block_is_an_error(tmp_path: Path) -> None:
    # GIVEN an evidence block that never ends WHEN parsed THEN its opening line is named
    path = write(tmp_path, "0001-x.md", "status: accepted\n", f"# T\n\n{EVIDENCE_BEGIN}\n| a |\n")
    assert problems_of(path) == (
        "1 problem in ADRs\n"
        f"{path}:7: {EVIDENCE_BEGIN} is never closed; add {EVIDENCE_END} after the generated "
        "block"
    )


# --- across files ----------------------------------------------------------------------------


def test_two_adrs_with_one_number_are_an_error(tmp_path: Path) -> None:
    # GIVEN two files numbered 0002 WHEN linted together THEN the second is reported
    first = write(tmp_path, "0002-a.md", "status: accepted\n")
    second = write(tmp_path, "0002-b.md", "status: accepted\n")
    assert lint_messages([first, second]) == [
        f"{second}:1: ADR number 2 is also used by {first}; give one of them the next free number"
    ]


def test_supersedes_targets_must_exist(tmp_path: Path) -> None:
    # GIVEN supersedes / superseded-by pointing at missing ADRs WHEN linted THEN both are named
    one = write(tmp_path, "0001-a.md", "status: accepted\nsupersedes: [7]\n")
    two = write(tmp_path, "0002-b.md", "status: superseded by [ADR-0009](0009-x.md)\n")
    assert lint_messages([one, two]) == [
        f"{one}:3: supersedes: ADR 0007 does not exist (ADRs: 0001, 0002); fix the number",
        f"{two}:2: status: ADR 0009 does not exist (ADRs: 0001, 0002); fix the number",
    ]


def test_supersedes_targets_that_exist_are_resolved(tmp_path: Path) -> None:
    # GIVEN ADR 2 superseding ADR 1 both ways WHEN linted THEN it is clean and numbers resolve
    one = write(tmp_path, "0001-a.md", "status: superseded by ADR-0002\n")
    two = write(tmp_path, "0002-b.md", "status: accepted\nsupersedes: ADR-0001\n")
    result = lint([one, two])
    assert result.problems == ()
    assert [(a.superseded_by, a.supersedes) for a in result.adrs] == [(2, ()), (None, (1,))]


def test_lint_checks_fact_names_and_suggests_the_nearest(tmp_path: Path) -> None:
    # GIVEN a metric name with a typo WHEN linted THEN the nearest metric names are suggested
    path = write(
        tmp_path,
        "0001-x.md",
        "claims:\n  - id: fits\n    text: Fits\n    holds_if: results.lora.peak_rss < 4GiB\n",
    )
    assert lint_messages([path]) == [
        f"{path}:5: claims[0].holds_if: unknown name 'results.lora.peak_rss'; nearest facts: "
        "results.lora.peak_rss_bytes, results.lora.train_peak_rss_bytes, "
        "results.lora.peak_memory_bytes\n"
        "    results.lora.peak_rss < 4GiB\n"
        "    ^~~~~~~~~~~~~~~~~~~~~"
    ]


# --- hostile front matter --------------------------------------------------------------------


def test_yaml_anchors_and_aliases_are_refused(tmp_path: Path) -> None:
    # GIVEN a self-referencing alias (which would make reading it recurse forever) WHEN parsed
    # THEN it is refused at its line and column
    path = write(tmp_path, "0001-x.md", "status: accepted\nclaims: &a [*a]\n")
    assert problems_of(path) == (
        "1 problem in ADRs\n"
        f"{path}:3: YAML anchors and aliases (&name, *name) are not allowed in front matter; "
        "write the value out\n"
        "    claims: &a [*a]\n"
        "            ^"
    )


def test_deeply_nested_front_matter_is_refused(tmp_path: Path) -> None:
    # GIVEN 2000 nested lists WHEN parsed THEN a clear error instead of a RecursionError
    path = write(tmp_path, "0001-x.md", "x: " + "[" * 2000 + "]" * 2000 + "\n")
    with pytest.raises(AdrError) as info:
        parse_adr(path)
    (problem,) = info.value.problems
    assert (problem.line, problem.message) == (
        2,
        f"front matter nests deeper than {MAX_YAML_DEPTH} levels; flatten it",
    )


_YAML_PIECES = st.sampled_from(
    [
        *"abc:-[]{},'\"#&*!|>%@` \n\t",
        "status: ",
        "accepted",
        "claims:\n",
        "  - id: x\n",
        "    text: y\n",
        "    holds_if: ",
        "model.parameters >= 7B",
        "revisit_when: ",
        "premises: ",
        "evidence: ",
        "supersedes: ",
        "!!python/object:os.system",
        "&a ",
        "*a",
        "2026-01-01",
        "---",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_YAML_PIECES, max_size=40).map("".join))
def test_any_front_matter_gives_an_adr_or_adr_errors(front_matter: str) -> None:
    # GIVEN arbitrary front matter WHEN linted THEN the outcome is an ADR or located problems,
    # never another exception
    with tempfile.TemporaryDirectory() as directory:
        path = write(Path(directory), "0001-x.md", front_matter + "\n")
        result = lint([path])  # collects problems instead of raising
    assert result.adrs or result.problems
    assert all(p.line >= 1 for p in result.problems)
