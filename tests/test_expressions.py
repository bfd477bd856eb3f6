"""The expression language: values, three-valued logic, exact errors, and safety properties."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adrbench.decisions.expressions import (
    MAX_DEPTH,
    MAX_SOURCE_LENGTH,
    Evaluation,
    ExpressionError,
    Missing,
    Value,
    evaluate,
    parse,
)

FACTS: dict[str, Value | Missing] = {
    "model.parameters": 22_713_216.0,
    "env.cuda_available": False,
    "env.device": "cpu",
    "results.lora.peak_rss_bytes": 1_700_000_000.0,
    "results.full.samples_per_s": 22.0,
    "results.lora.samples_per_s": 19.0,
    "results.qlora.peak_rss_bytes": Missing("results.qlora is skipped (cuda_unavailable)"),
}


def run(source: str, facts: Mapping[str, Value | Missing] = FACTS) -> Evaluation:
    return evaluate(parse(source), facts.get, suggest=lambda name: sorted(facts)[:2])


def error_of(source: str, facts: Mapping[str, Value | Missing] = FACTS) -> str:
    with pytest.raises(ExpressionError) as info:
        run(source, facts)
    return str(info.value)


# --- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("7B", 7e9),
        ("22.7M", 22.7e6),
        ("8GiB", 8 * 2**30),
        ("500MB", 5e8),
        ("90%", 0.9),
        ("1e3", 1000.0),
        ("2 + 3 * 4", 14.0),
        ("(2 + 3) * 4", 20.0),
        ("-2 - -3", 1.0),
        ("10 / 4", 2.5),
        ("max(1, 5, 3)", 5.0),
        ("min(4, 2)", 2.0),
        ("abs(-3)", 3.0),
    ],
)
def test_numbers_with_suffixes_and_arithmetic_give_floats(source: str, expected: float) -> None:
    # GIVEN a numeric expression WHEN it is evaluated THEN it is the expected float
    assert run(source).value == pytest.approx(expected)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("model.parameters >= 7B", False),
        ("model.parameters < 7B", True),
        ("model.parameters == 22713216", True),
        ("1 < 2 < 3", True),
        ("1 < 3 < 2", False),
        ("env.cuda_available", False),
        ("not env.cuda_available", True),
        ('env.device == "cpu"', True),
        ("env.device != 'cuda'", True),
        ("env.cuda_available == false", True),
        ("results.lora.peak_rss_bytes < 4GiB and not env.cuda_available", True),
        ("results.lora.samples_per_s > results.full.samples_per_s", False),
        ("true or false and false", True),  # "and" binds tighter than "or"
    ],
)
def test_conditions_evaluate_to_booleans(source: str, expected: bool) -> None:
    # GIVEN facts of a CPU machine WHEN a condition is evaluated THEN it gives the expected truth
    assert run(source).value is expected


def test_evaluation_reports_every_fact_it_read() -> None:
    # GIVEN a condition over two facts WHEN evaluated THEN both values are reported, in order
    result = run("results.lora.samples_per_s > results.full.samples_per_s")
    assert dict(result.values) == {
        "results.lora.samples_per_s": 19.0,
        "results.full.samples_per_s": 22.0,
    }
    assert result.unknown == ()


def test_a_missing_fact_makes_the_result_unknown_with_its_reason() -> None:
    # GIVEN a skipped scenario's metric WHEN compared THEN the result is unknown, not false
    result = run("results.qlora.peak_rss_bytes < 4GiB")
    assert result.value is None
    assert result.unknown == ("results.qlora is skipped (cuda_unavailable)",)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("results.qlora.peak_rss_bytes < 1 and false", False),
        ("results.qlora.peak_rss_bytes < 1 or true", True),
        ("results.qlora.peak_rss_bytes < 1 and true", None),
        ("results.qlora.peak_rss_bytes < 1 or false", None),
        ("not (results.qlora.peak_rss_bytes < 1)", None),
        ("1 > 2 < results.qlora.peak_rss_bytes", False),
    ],
)
def test_unknown_follows_three_valued_logic(source: str, expected: bool | None) -> None:
    # GIVEN a missing fact WHEN combined THEN only a decisive operand makes the result known
    assert run(source).value is expected


def test_division_by_zero_is_unknown_not_a_crash() -> None:
    # GIVEN a ratio whose denominator is zero WHEN evaluated THEN it is unknown with the reason
    result = run("model.parameters / 0 > 1")
    assert result.value is None
    assert result.unknown == ("division by zero in 'model.parameters / 0'",)


# --- exact errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "(1 + 2",
            "expected ')' to close the '(' at column 1\n    (1 + 2\n          ^",
        ),
        (
            "model.parameters = 7B",
            "unexpected character '='; use '==' to compare\n"
            "    model.parameters = 7B\n"
            "                     ^",
        ),
        (
            "a && b",
            "unexpected character '&'; use 'and' / 'or'\n    a && b\n      ^",
        ),
        (
            "model.parameters >= 7X",
            "unknown suffix 'X' in '7X'; known suffixes: K, M, B, T, KB, MB, GB, TB, KiB, MiB, "
            "GiB, TiB, %\n"
            "    model.parameters >= 7X\n"
            "                        ^~",
        ),
        (
            "model.parameters >=",
            "expression ends early; expected a value, a name or '('\n"
            "    model.parameters >=\n"
            "                       ^",
        ),
        (
            "model.parameters 7B",
            "unexpected '7B' after a complete expression; join conditions with 'and' / 'or'\n"
            "    model.parameters 7B\n"
            "                     ^~",
        ),
        (
            "model.__class__",
            "names may not start with '_' ('__class__'); facts are plain dotted names such as "
            "model.parameters\n"
            "    model.__class__\n"
            "          ^~~~~~~~~",
        ),
        (
            "__import__('os')",
            "unknown function '__import__'; the functions are: min, max, abs\n"
            "    __import__('os')\n"
            "    ^~~~~~~~~~",
        ),
        (
            "open('/etc/passwd')",
            "unknown function 'open'; the functions are: min, max, abs\n"
            "    open('/etc/passwd')\n"
            "    ^~~~",
        ),
        (
            "max(1)",
            "max() takes 2 to 8 arguments, got 1\n    max(1)\n    ^~~~~~",
        ),
        (
            "model.",
            "expected a name after '.' at column 6\n    model.\n          ^",
        ),
        ("", "expression is empty; write a condition such as x >= 7B\n    \n    ^"),
        (
            "'abc",
            'unexpected character "\'"; close the string with a matching quote (no backslash '
            "escapes)\n    'abc\n    ^",
        ),
    ],
)
def test_syntax_errors_point_at_the_column(source: str, message: str) -> None:
    # GIVEN a malformed expression WHEN parsed THEN the message names the problem with a caret
    with pytest.raises(ExpressionError) as info:
        parse(source)
    assert str(info.value) == message


def test_unknown_name_lists_the_nearest_facts() -> None:
    # GIVEN a typo in a fact name WHEN evaluated THEN the message suggests the nearest facts
    facts = dict(FACTS)
    message = error_of("model.paramters >= 7B", facts)
    assert message == (
        "unknown name 'model.paramters'; nearest facts: env.cuda_available, env.device\n"
        "    model.paramters >= 7B\n"
        "    ^~~~~~~~~~~~~~~"
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            'env.device > "a"',
            "cannot compare 'cpu' > 'a'; strings and booleans only support '==' and '!='\n"
            '    env.device > "a"\n'
            "    ^~~~~~~~~~~~~~~~",
        ),
        (
            "env.cuda_available >= 1",
            "cannot compare False >= 1.0; both sides must be numbers, strings or booleans alike\n"
            "    env.cuda_available >= 1\n"
            "    ^~~~~~~~~~~~~~~~~~~~~~~",
        ),
        (
            "env.device + 1",
            "'+' needs a number, got 'cpu'\n    env.device + 1\n    ^~~~~~~~~~",
        ),
        (
            "model.parameters and true",
            "'and' needs true or false, got 22713216.0; compare it first\n"
            "    model.parameters and true\n"
            "    ^~~~~~~~~~~~~~~~",
        ),
    ],
)
def test_type_mismatches_are_errors_with_a_caret(source: str, message: str) -> None:
    # GIVEN operands of the wrong kind WHEN evaluated THEN the error names them and points at them
    assert error_of(source) == message


def test_overlong_expressions_are_refused() -> None:
    # GIVEN an expression longer than the limit WHEN parsed THEN it is refused with the limit
    source = "1 + " * 200 + "1"
    with pytest.raises(ExpressionError) as info:
        parse(source)
    assert info.value.message == (
        f"expression is 801 characters long; the limit is {MAX_SOURCE_LENGTH}, split it into "
        "several claims"
    )


def test_deep_nesting_is_refused_before_recursion_runs_out() -> None:
    # GIVEN parentheses nested beyond the limit WHEN parsed THEN a clear error, not RecursionError
    source = "(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(ExpressionError) as info:
        parse(source)
    assert info.value.message == f"expression nests deeper than {MAX_DEPTH} levels; simplify it"


def test_parse_records_every_name_once_in_order() -> None:
    # GIVEN an expression that mentions a name twice WHEN parsed THEN names lists it once
    expression = parse("a.b > 1 and c.d < 2 or a.b == 3")
    assert expression.names == ("a.b", "c.d")


# --- safety properties -----------------------------------------------------------------------

# Audit events that would mean an expression ran code, opened a file or started a process.
_FORBIDDEN_EVENTS = frozenset(
    {
        "open",
        "exec",
        "compile",
        "import",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "subprocess.Popen",
        "builtins.input",
        "socket.connect",
        "ctypes.dlopen",
        "os.remove",
        "os.listdir",
        "os.scandir",
        "object.__getattr__",
        "object.__setattr__",
    }
)
_recording: list[list[str]] = []


def _audit(event: str, _args: tuple[Any, ...]) -> None:
    if _recording and event in _FORBIDDEN_EVENTS:
        _recording[-1].append(event)


sys.addaudithook(_audit)  # audit hooks cannot be removed; it records only inside _watching()


@contextmanager
def _watching() -> Iterator[list[str]]:
    events: list[str] = []
    _recording.append(events)
    try:
        yield events
    finally:
        _recording.pop()


def _parse_and_evaluate(source: str) -> None:
    try:
        expression = parse(source)
        evaluate(expression, FACTS.get, suggest=lambda _name: ())
    except ExpressionError:
        pass  # refusing is fine; anything else (or any side effect) is not


_ATTACKS = st.sampled_from(
    [
        "__import__('os').system('touch /tmp/pwned')",
        "open('/etc/passwd')",
        "().__class__.__bases__[0].__subclasses__()",
        "eval('1+1')",
        "exec('x=1')",
        "model.__globals__",
        "model.parameters.__class__",
        "lambda: 1",
        "[x for x in range(10**9)]",
        "9 ** 9 ** 9",
        "'a' * 10**9",
        "getattr(model, 'parameters')",
        "compile('1', 'f', 'eval')",
    ]
)
_ALPHABET = st.sampled_from(
    [
        *"abcdefxyz_0123456789.()[]{}<>=!+-*/%&|^~,'\" \\:;@#$`?",
        *["and", "or", "not", "true", "false", "model.parameters", "7B", "8GiB", "__"],
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_ATTACKS, st.lists(_ALPHABET, max_size=60).map("".join), st.text(max_size=80)))
def test_no_input_executes_code_or_reads_files(source: str) -> None:
    # GIVEN any text WHEN parsed and evaluated THEN no code, file, import or process is touched,
    # and the only possible failure is ExpressionError
    with _watching() as events:
        _parse_and_evaluate(source)
    assert events == []


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=2000), st.sampled_from(["(", "-", "not ", "max(1,"]))
def test_nesting_of_any_depth_ends_in_a_result_or_an_expression_error(
    depth: int, opener: str
) -> None:
    # GIVEN nesting of any depth WHEN parsed THEN it never overflows the stack
    closer = {"(": ")", "-": "", "not ": "", "max(1,": ")"}[opener]
    operand = "true" if opener == "not " else "1"
    source = opener * depth + operand + closer * depth
    if depth > MAX_DEPTH or len(source) > MAX_SOURCE_LENGTH:
        with pytest.raises(ExpressionError):
            parse(source)
        return
    assert evaluate(parse(source), FACTS.get).value is not None


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=400), st.sampled_from(["+", "*", "-", "/", "<", "and"]))
def test_long_flat_chains_end_in_a_result_or_an_expression_error(count: int, op: str) -> None:
    # GIVEN a long chain of one operator WHEN parsed and evaluated THEN it ends (no recursion error)
    operand = "true" if op == "and" else "1"
    source = f" {op} ".join([operand] * count)
    if len(source) > MAX_SOURCE_LENGTH:
        with pytest.raises(ExpressionError):
            parse(source)
        return
    assert evaluate(parse(source), FACTS.get).value is not None


# Three-valued logic is sound: when a result is known despite missing facts, every value those
# facts could take gives the same result.
_NAMES = ("p.a", "p.b", "p.c")


def _bool_expression() -> st.SearchStrategy[str]:
    leaves = st.sampled_from([*_NAMES, "true", "false"])
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            inner.map(lambda e: f"not ({e})"),
            st.tuples(inner, inner).map(lambda p: f"({p[0]}) and ({p[1]})"),
            st.tuples(inner, inner).map(lambda p: f"({p[0]}) or ({p[1]})"),
        ),
        max_leaves=8,
    )


@settings(max_examples=200, deadline=None)
@given(
    _bool_expression(),
    st.fixed_dictionaries({n: st.sampled_from([True, False, None]) for n in _NAMES}),
)
def test_a_known_result_does_not_depend_on_missing_facts(
    source: str, assignment: dict[str, bool | None]
) -> None:
    # GIVEN some facts missing WHEN the result is known THEN all completions agree with it
    facts: dict[str, Value | Missing] = {
        n: (Missing("not measured") if v is None else v) for n, v in assignment.items()
    }
    expression = parse(source)
    result = evaluate(expression, facts.get).value
    missing = [n for n, v in assignment.items() if v is None]
    completions = set()
    for values in itertools.product([True, False], repeat=len(missing)):
        complete: dict[str, Value | Missing] = {**facts, **dict(zip(missing, values, strict=True))}
        completions.add(evaluate(expression, complete.get).value)
    if result is None:
        assert missing, "unknown without any missing fact"
    else:
        assert completions == {result}


def test_the_audit_watch_sees_file_access() -> None:
    # GIVEN the watch used by the safety property WHEN code opens a file or evals THEN it notices
    # (so the property above can fail)
    with _watching() as events:
        with open(__file__, encoding="utf-8"):
            pass
        eval("1 + 1")
    assert events[0] == "open"
    assert "exec" in events


def test_calculated_sides_of_a_comparison_are_reported() -> None:
    # GIVEN a ratio compared with a threshold WHEN evaluated THEN the ratio itself is reported
    result = run("results.full.samples_per_s / results.lora.samples_per_s >= 1 and max(1, 2) > 0")
    assert dict(result.computed) == {
        "results.full.samples_per_s / results.lora.samples_per_s": pytest.approx(22 / 19),
        "max(1, 2)": 2.0,
    }


# --- messages that mutation testing found unchecked (tools/mutation.sh) ----------------------


@pytest.mark.parametrize("op", ["&", "|"])
def test_c_style_logic_operators_point_to_and_or(op: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(f"a {op} b")
    assert (
        str(info.value) == f"unexpected character {op!r}; use 'and' / 'or'\n    a {op} b\n      ^"
    )


def test_a_function_given_text_names_the_function() -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate(parse('min("x", 1) > 0'), lambda name: 1.0)
    assert str(info.value) == "'min()' needs a number, got 'x'\n    min(\"x\", 1) > 0\n        ^~~"


# --- snippets of long lines ---------------------------------------------------------------------


def test_a_short_line_is_shown_whole_with_the_caret_under_the_span() -> None:
    from adrbench.decisions.expressions import caret_snippet

    assert caret_snippet("a >= b", 2, 4) == "    a >= b\n      ^~"
    assert caret_snippet("a", 0) == "    a\n    ^"


def test_a_long_line_is_cut_around_the_caret() -> None:
    from adrbench.decisions.expressions import SNIPPET_WIDTH, caret_snippet

    # GIVEN a 40,000-character line with the problem in the middle
    line = "x" * 20_000 + "BAD" + "y" * 19_997
    source, marker = caret_snippet(line, 20_000, 20_003, indent="").split("\n")
    # THEN a window of SNIPPET_WIDTH characters is shown, cut on both sides, the caret still
    # under the problem
    assert source == "..." + line[20_000 - SNIPPET_WIDTH // 2 : 20_000 + SNIPPET_WIDTH // 2] + "..."
    assert source[marker.index("^") :].startswith("BAD")
    assert marker.strip() == "^~~"
    # AND near either end the window stops at the end, cut on one side only
    start, start_marker = caret_snippet(line, 0, 1, indent="").split("\n")
    assert start == line[:SNIPPET_WIDTH] + "..." and start_marker == "^"
    end, end_marker = caret_snippet(line, len(line) - 1, indent="").split("\n")
    assert end == "..." + line[-SNIPPET_WIDTH:]
    assert end_marker == " " * (len(end) - 1) + "^"
    # AND a line exactly SNIPPET_WIDTH long is shown whole
    exact = "z" * SNIPPET_WIDTH
    assert caret_snippet(exact, 5, indent="").split("\n")[0] == exact


def test_a_number_beyond_float_range_is_an_error_not_infinity() -> None:
    with pytest.raises(ExpressionError) as raised:
        parse("model.parameters >= 1e400")
    assert raised.value.message.startswith("'1e400' is too large to be a number here")
    assert (raised.value.start, raised.value.end) == (20, 25)


# --- exact limits and messages (mutants of expressions.py that survived its tests) -------------


@pytest.mark.parametrize(
    ("source", "message", "span"),
    [
        ("a and", "expression ends early; expected a value, a name or '('", (5, 6)),
        ("a < and", "unexpected 'and'; expected a value, a name or '('", (4, 7)),
        ("or", "unexpected 'or'; expected a value, a name or '('", (0, 2)),
        ("not", "expression ends early; expected a value, a name or '('", (3, 4)),
        ("a & b", "unexpected character '&'; use 'and' / 'or'", (2, 3)),
        ("a | b", "unexpected character '|'; use 'and' / 'or'", (2, 3)),
        ("a ! b", "unexpected character '!'; use 'not' for negation or '!=' to compare", (2, 3)),
        ("a = b", "unexpected character '='; use '==' to compare", (2, 3)),
        (
            "a == 'b",
            'unexpected character "\'"; close the string with a matching quote (no '
            "backslash escapes)",
            (5, 6),
        ),
        ("a # b", "unexpected character '#'", (2, 3)),
        ("min(a)", "min() takes 2 to 8 arguments, got 1", (0, 6)),
        ("min(a, a, a, a, a, a, a, a, a)", "min() takes 2 to 8 arguments, got 9", (0, 30)),
        ("abs(a, b)", "abs() takes 1 arguments, got 2", (0, 9)),
    ],
)
def test_syntax_errors_say_exactly_what_and_where(
    source: str, message: str, span: tuple[int, int]
) -> None:
    with pytest.raises(ExpressionError) as raised:
        parse(source)
    assert raised.value.message == message
    assert (raised.value.start, raised.value.end) == span


def test_the_largest_calls_and_every_comparison_parse() -> None:
    assert parse("min(a, a, a, a, a, a, a, a)").names == ("a",)
    assert parse("abs(a)").names == ("a",)
    facts = {"a": 1.0, "b": 2.0}
    for op, expected in [("<", True), ("<=", True), (">", False), (">=", False), ("==", False)]:
        assert run(f"a {op} b", facts).value is expected, op
    assert run("a != b", facts).value is True
    assert run("true and not false or false", facts).value is True


def test_the_length_and_depth_limits_are_exact() -> None:
    # GIVEN expressions exactly at the limits THEN they parse; one past THEN they are refused
    at_length = "a" + " " * (MAX_SOURCE_LENGTH - 1)
    assert parse(at_length).names == ("a",)
    with pytest.raises(ExpressionError, match="501 characters long; the limit is 500"):
        parse(at_length + " ")
    at_depth = "(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH
    assert parse(at_depth).names == ("a",)
    with pytest.raises(ExpressionError, match="nests deeper than 32 levels"):
        parse("(" + at_depth + ")")


def test_an_error_without_an_end_marks_one_character() -> None:
    error = ExpressionError("bad", "a < b", 2)
    assert error.end == 3
    assert str(error) == "bad\n    a < b\n      ^"


def test_expression_records_are_frozen_slotted_and_compare_by_source() -> None:
    import dataclasses

    from adrbench.decisions import expressions

    classes = [
        c
        for c in vars(expressions).values()
        if isinstance(c, type)
        and dataclasses.is_dataclass(c)
        and c.__module__ == expressions.__name__
    ]
    assert len(classes) >= 10
    for cls in classes:
        assert cls.__dataclass_params__.frozen, cls.__name__  # type: ignore[attr-defined]
        assert "__slots__" in cls.__dict__, cls.__name__
    first, second = parse("a < b"), parse("a  <  b")
    assert "_tree" not in repr(first)
    assert (first.source, first.names) == ("a < b", ("a", "b"))
    assert first != second  # different text, though the same tree
    assert first == parse("a < b")


@pytest.mark.parametrize(
    ("sibling", "joiner"),
    [("not true", " and "), ("-1", " + "), ("(1)", " + "), ("abs(1)", " + ")],
)
def test_sibling_groups_do_not_add_up_to_the_depth_limit(sibling: str, joiner: str) -> None:
    # GIVEN more siblings side by side than the depth limit (each one level deep)
    source = joiner.join([sibling] * (MAX_DEPTH + 1))
    assert len(source) <= MAX_SOURCE_LENGTH
    # WHEN parsed THEN leaving each one gives its level back: they parse
    parse(source)


@pytest.mark.parametrize(
    ("first", "joiner", "inner"),
    [
        ("not true", " and ", "true"),
        ("-1", " + ", "1"),
        ("(1)", " + ", "1"),
        ("abs(1)", " + ", "1"),
    ],
)
def test_leaving_a_group_returns_to_the_level_around_it_not_to_the_top(
    first: str, joiner: str, inner: str
) -> None:
    # GIVEN, 20 levels deep, a one-level group and then 20 more levels: 40 on the second path
    deeper = "(" * 20 + inner + ")" * 20
    source = "(" * 20 + first + joiner + deeper + ")" * 20
    # WHEN parsed THEN the second path is over the limit, counted from where the first left off
    with pytest.raises(ExpressionError, match=f"nests deeper than {MAX_DEPTH} levels"):
        parse(source)
