"""The expression language of claims, revisit triggers and premises — parsed here, never eval'd.

``model.parameters >= 7B``, ``results.lora.peak_rss_bytes < 4GiB and not env.cuda_available``,
``results.full.trainable_parameters / results.lora.trainable_parameters >= 50``.

A small Pratt parser over a tokenizer, chosen over a library because the language needs three
things no library gave us together: numbers with suffixes (``7B``, ``8GiB``, ``90%``, via
:func:`adrbench.units.parse_quantity`), three-valued logic (a fact that is missing makes the result
*unknown*, it never quietly becomes false), and errors that point at a column with a caret.

Grammar (lowest binding first)::

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)*     # chained: a < b < c
    sum     := product (("+" | "-") product)*
    product := unary (("*" | "/") unary)*
    unary   := "-" unary | atom
    atom    := NUMBER | STRING | "true" | "false" | NAME ("." NAME)*
             | FUNC "(" args ")" | "(" expr ")"

Safety: there is no ``eval``/``exec``/``getattr``; names are looked up as plain strings in the
facts, segments starting with ``_`` are refused, calls are limited to :data:`FUNCTIONS` (pure,
bounded), there is no exponent operator, and the source length and nesting depth are capped, so
both parsing and evaluation are linear in the (bounded) input.

Uncertain values: a measured fact may be an :class:`~adrbench.stats.Estimate` (a mean across
repetitions with its 95% interval). Arithmetic carries the interval along
(:func:`adrbench.stats.combine`: paired by seed where both sides share seeds), and a comparison
that involves one is three-way (:func:`adrbench.stats.compare`): true when the whole interval
satisfies it, false when the whole interval violates it, otherwise *inconclusive*. Logic is
Kleene's: ``false and inconclusive`` is false, ``true or inconclusive`` true; an unknown (missing)
fact outranks an inconclusive one. Exact numbers behave exactly as before.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from adrbench.errors import UserError
from adrbench.stats import Estimate, combine, compare, repetitions_to_resolve
from adrbench.units import parse_quantity

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_SOURCE_LENGTH",
    "Estimate",
    "Evaluation",
    "Expression",
    "ExpressionError",
    "Lookup",
    "Missing",
    "Value",
    "caret_snippet",
    "evaluate",
    "parse",
]

MAX_SOURCE_LENGTH = 500
MAX_DEPTH = 32

Value = bool | float | str | Estimate


@dataclass(frozen=True, slots=True)
class Missing:
    """A fact that exists in the namespace but has no value here, and why (e.g. "skipped")."""

    reason: str


Lookup = Callable[[str], "Value | Missing | None"]
"""Resolve a dotted name: its value, :class:`Missing` with a reason, or None if no such fact."""


def _min(*args: float) -> float:
    return min(args)


def _max(*args: float) -> float:
    return max(args)


def _abs(*args: float) -> float:
    return abs(args[0])


# name -> (function, minimum arity, maximum arity). Numbers only, so every call is O(arity).
FUNCTIONS: Mapping[str, tuple[Callable[..., float], int, int]] = {
    "min": (_min, 2, 8),
    "max": (_max, 2, 8),
    "abs": (_abs, 1, 1),
}


# A snippet shows at most this many characters of its line: a 40 KB line is cut around the caret.
SNIPPET_WIDTH = 120


def caret_snippet(source: str, start: int, end: int | None = None, indent: str = "    ") -> str:
    """Two lines: the source, and ``^~~~`` under columns ``start`` to ``end`` (packaging style).

    A line longer than :data:`SNIPPET_WIDTH` is shown as the window around ``start``, with
    ``...`` where it was cut.
    """
    end = max(start + 1, end if end is not None else start + 1)
    if len(source) > SNIPPET_WIDTH:
        low = max(0, min(start - SNIPPET_WIDTH // 2, len(source) - SNIPPET_WIDTH))
        high = low + SNIPPET_WIDTH
        head = "..." if low > 0 else ""
        tail = "..." if high < len(source) else ""
        shift = len(head) - low
        source = head + source[low:high] + tail
        start, end = start + shift, min(end, high) + shift
        end = max(start + 1, end)
    marker = " " * start + "^" + "~" * (end - start - 1)
    return f"{indent}{source}\n{indent}{marker}"


class ExpressionError(UserError):
    """A bad expression: the message, then the source with a caret under the offending span.

    Args:
        message: What is wrong and how to fix it, one sentence.
        source: The expression text.
        start: Column (0-based) where the problem starts.
        end: Column just past the problem (defaults to one character).
    """

    def __init__(self, message: str, source: str, start: int, end: int | None = None) -> None:
        self.message = message
        self.source = source
        self.start = start
        self.end = end if end is not None else start + 1
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.message}\n{caret_snippet(self.source, self.start, self.end)}"


# --- tokens ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # NUMBER STRING NAME OP EOF
    text: str
    start: int
    end: int


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<NUMBER>[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?:[A-Za-z]+|%)?)
  | (?P<NAME>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<STRING>"[^"\\]*"|'[^'\\]*')
  | (?P<OP><=|>=|==|!=|[<>+\-*/().,])
    """,
    re.VERBOSE,
)

_KEYWORDS = frozenset({"and", "or", "not", "true", "false"})
_COMPARISONS = frozenset({"<", "<=", ">", ">=", "==", "!="})


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            char = source[pos]
            hint = ""
            if char in "\"'":
                hint = "; close the string with a matching quote (no backslash escapes)"
            elif char == "=":
                hint = "; use '==' to compare"
            elif char == "!":
                hint = "; use 'not' for negation or '!=' to compare"
            elif char in "&|":
                hint = "; use 'and' / 'or'"
            raise ExpressionError(f"unexpected character {char!r}{hint}", source, pos)
        kind = match.lastgroup
        assert kind is not None  # one alternative always matched
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), pos, match.end()))
        pos = match.end()
    tokens.append(_Token("EOF", "", len(source), len(source)))
    return tokens


# --- syntax tree -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Node:
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Literal(_Node):
    value: Value


@dataclass(frozen=True, slots=True)
class _Name(_Node):
    name: str


@dataclass(frozen=True, slots=True)
class _Unary(_Node):
    op: str  # "-" or "not"
    operand: _Node


@dataclass(frozen=True, slots=True)
class _Binary(_Node):
    op: str  # + - * /
    left: _Node
    right: _Node


@dataclass(frozen=True, slots=True)
class _Logic(_Node):
    op: str  # and / or
    operands: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Compare(_Node):
    ops: tuple[str, ...]
    operands: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Call(_Node):
    function: str
    args: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed expression. Build with :func:`parse`; judge with :func:`evaluate`.

    Args:
        source: The text as written.
        names: Every dotted fact name it reads, in order of first appearance.
    """

    source: str
    names: tuple[str, ...]
    _tree: _Node = field(repr=False, compare=False)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokenize(source)
        self.index = 0
        self.depth = 0
        self.names: list[str] = []

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at(self, *texts: str) -> bool:
        token = self.token
        return token.kind in ("OP", "NAME") and token.text in texts

    def fail(self, message: str, token: _Token | None = None) -> ExpressionError:
        token = token or self.token
        return ExpressionError(message, self.source, token.start, max(token.end, token.start + 1))

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"expression nests deeper than {MAX_DEPTH} levels; simplify it")

    def parse(self) -> _Node:
        node = self.parse_or()
        if self.token.kind != "EOF":
            raise self.fail(
                f"unexpected {self.token.text!r} after a complete expression; "
                "join conditions with 'and' / 'or'"
            )
        return node

    def parse_or(self) -> _Node:
        return self._logic("or", self.parse_and)

    def parse_and(self) -> _Node:
        return self._logic("and", self.parse_not)

    def _logic(self, op: str, operand: Callable[[], _Node]) -> _Node:
        first = operand()
        operands = [first]
        while self.at(op):
            self.advance()
            operands.append(operand())
        if len(operands) == 1:
            return first
        return _Logic(first.start, operands[-1].end, op, tuple(operands))

    def parse_not(self) -> _Node:
        if self.at("not"):
            token = self.advance()
            self.enter()
            operand = self.parse_not()
            self.depth -= 1
            return _Unary(token.start, operand.end, "not", operand)
        return self.parse_compare()

    def parse_compare(self) -> _Node:
        first = self.parse_sum()
        ops: list[str] = []
        operands = [first]
        while self.token.kind == "OP" and self.token.text in _COMPARISONS:
            ops.append(self.advance().text)
            operands.append(self.parse_sum())
        if not ops:
            return first
        return _Compare(first.start, operands[-1].end, tuple(ops), tuple(operands))

    def parse_sum(self) -> _Node:
        left = self.parse_product()
        while self.token.kind == "OP" and self.token.text in "+-":
            op = self.advance().text
            right = self.parse_product()
            left = _Binary(left.start, right.end, op, left, right)
        return left

    def parse_product(self) -> _Node:
        left = self.parse_unary()
        while self.token.kind == "OP" and self.token.text in "*/":
            op = self.advance().text
            right = self.parse_unary()
            left = _Binary(left.start, right.end, op, left, right)
        return left

    def parse_unary(self) -> _Node:
        if self.token.kind == "OP" and self.token.text == "-":
            token = self.advance()
            self.enter()
            operand = self.parse_unary()
            self.depth -= 1
            return _Unary(token.start, operand.end, "-", operand)
        return self.parse_atom()

    def parse_atom(self) -> _Node:
        token = self.token
        if token.kind == "NUMBER":
            self.advance()
            try:
                number = parse_quantity(token.text)
            except ValueError as error:
                raise self.fail(str(error), token) from None
            return _Literal(token.start, token.end, number)
        if token.kind == "STRING":
            self.advance()
            return _Literal(token.start, token.end, token.text[1:-1])
        if token.kind == "OP" and token.text == "(":
            self.advance()
            self.enter()
            inner = self.parse_or()
            self.depth -= 1
            if not self.at(")"):
                raise self.fail(f"expected ')' to close the '(' at column {token.start + 1}")
            self.advance()
            return inner
        if token.kind == "NAME":
            return self.parse_name()
        if token.kind == "EOF":
            raise self.fail("expression ends early; expected a value, a name or '('")
        raise self.fail(f"unexpected {token.text!r}; expected a value, a name or '('")

    def parse_name(self) -> _Node:
        first = self.advance()
        if first.text in ("true", "false"):
            return _Literal(first.start, first.end, first.text == "true")
        if first.text in _KEYWORDS:
            raise self.fail(f"unexpected {first.text!r}; expected a value, a name or '('", first)
        if self.at("("):
            return self.parse_call(first)
        parts = [first]
        while self.at("."):
            dot = self.advance()
            if self.token.kind != "NAME":
                raise self.fail(f"expected a name after '.' at column {dot.start + 1}")
            parts.append(self.advance())
        for part in parts:
            if part.text.startswith("_"):
                raise self.fail(
                    f"names may not start with '_' ({part.text!r}); facts are plain dotted "
                    "names such as model.parameters",
                    part,
                )
        name = ".".join(p.text for p in parts)
        if name not in self.names:
            self.names.append(name)
        return _Name(first.start, parts[-1].end, name)

    def parse_call(self, name: _Token) -> _Node:
        if name.text not in FUNCTIONS:
            allowed = ", ".join(FUNCTIONS)
            raise self.fail(f"unknown function {name.text!r}; the functions are: {allowed}", name)
        self.advance()  # "("
        self.enter()
        args: list[_Node] = []
        if not self.at(")"):
            args.append(self.parse_or())
            while self.at(","):
                self.advance()
                args.append(self.parse_or())
        self.depth -= 1
        if not self.at(")"):
            raise self.fail(f"expected ',' or ')' in the call to {name.text}()")
        close = self.advance()
        _fn, low, high = FUNCTIONS[name.text]
        if not low <= len(args) <= high:
            wanted = f"{low}" if low == high else f"{low} to {high}"
            raise ExpressionError(
                f"{name.text}() takes {wanted} arguments, got {len(args)}",
                self.source,
                name.start,
                close.end,
            )
        return _Call(name.start, close.end, name.text, tuple(args))


def parse(source: str) -> Expression:
    """Parse an expression.

    Args:
        source: The text, at most :data:`MAX_SOURCE_LENGTH` characters.

    Raises:
        ExpressionError: with the column of the problem.
    """
    if not isinstance(source, str):
        raise TypeError(f"expression must be a string, got {type(source).__name__}")
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExpressionError(
            f"expression is {len(source)} characters long; the limit is {MAX_SOURCE_LENGTH}, "
            "split it into several claims",
            source[:60] + "...",
            60,
        )
    if not source.strip():
        raise ExpressionError("expression is empty; write a condition such as x >= 7B", source, 0)
    parser = _Parser(source)
    tree = parser.parse()
    return Expression(source=source, names=tuple(parser.names), _tree=tree)


# --- evaluation ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What an expression came to.

    Args:
        value: The result, or None when it is unknown.
        values: Every fact it read, by dotted name: the value, or a :class:`Missing`.
        unknown: Why the result is unknown (one sentence per missing fact), empty when known.
        computed: Each compared side that is a calculation rather than a plain name or number,
            by its source text (e.g. ``{"a / b": 68.5}``), so a report can show the ratio (the
            mean, for an uncertain one).
        inconclusive: True when the result turned on a comparison whose 95% interval straddles
            the threshold (``value`` is then None and ``unknown`` empty).
        intervals: Each uncertain compared quantity by source text (for ``a > b`` with both
            uncertain, also ``"a - b"``: the interval that decided), so a report can show it.
        resolve: For an inconclusive result, about how many repetitions would resolve its
            hardest comparison (see :func:`adrbench.stats.repetitions_to_resolve`); None if no
            number of repetitions would (the estimate sits on the threshold) or not inconclusive.
        gap: The distance from the threshold that ``resolve`` was worked out for.
    """

    value: Value | None
    values: Mapping[str, Value | Missing]
    unknown: tuple[str, ...]
    computed: Mapping[str, float] = field(default_factory=dict)
    inconclusive: bool = False
    intervals: Mapping[str, Estimate] = field(default_factory=dict)
    resolve: int | None = None
    gap: float | None = None


class _Unknown:
    """The value of a sub-expression that depends on a missing fact."""

    __slots__ = ()


_UNKNOWN = _Unknown()


class _Inconclusive:
    """The value of a comparison whose interval straddles its threshold."""

    __slots__ = ()


_INCONCLUSIVE = _Inconclusive()
_Result = Value | _Unknown | _Inconclusive


class _Evaluator:
    def __init__(
        self, expression: Expression, lookup: Lookup, suggest: Callable[[str], Sequence[str]]
    ) -> None:
        self.expression = expression
        self.lookup = lookup
        self.suggest = suggest
        self.values: dict[str, Value | Missing] = {}
        self.reasons: list[str] = []
        self.computed: dict[str, float] = {}
        self.intervals: dict[str, Estimate] = {}
        self.resolve: list[tuple[int | None, float]] = []

    def fail(self, message: str, node: _Node) -> ExpressionError:
        return ExpressionError(message, self.expression.source, node.start, node.end)

    def unknown(self, reason: str) -> _Unknown:
        if reason not in self.reasons:
            self.reasons.append(reason)
        return _UNKNOWN

    def eval(self, node: _Node) -> _Result:
        if isinstance(node, _Literal):
            return node.value
        if isinstance(node, _Name):
            return self.name(node)
        if isinstance(node, _Unary):
            return self.unary(node)
        if isinstance(node, _Binary):
            return self.binary(node)
        if isinstance(node, _Logic):
            return self.logic(node)
        if isinstance(node, _Compare):
            return self.compare(node)
        if isinstance(node, _Call):
            return self.call(node)
        raise TypeError(f"unhandled node {node!r}")  # a bug here, not the user's input

    def name(self, node: _Name) -> _Result:
        found = self.lookup(node.name)
        if found is None:
            close = list(self.suggest(node.name))
            hint = "; nearest facts: " + ", ".join(close) if close else ""
            raise self.fail(f"unknown name {node.name!r}{hint}", node)
        self.values[node.name] = found
        if isinstance(found, Missing):
            return self.unknown(found.reason)
        return found

    def number(self, value: _Result, node: _Node, op: str) -> float | Estimate | _Unknown:
        if isinstance(value, _Unknown | Estimate):
            return value
        if isinstance(value, bool) or not isinstance(value, float | int):
            shown = (
                "an inconclusive comparison" if isinstance(value, _Inconclusive) else repr(value)
            )
            raise self.fail(f"{op!r} needs a number, got {shown}", node)
        return float(value)

    def truth(self, value: _Result, node: _Node, op: str) -> bool | _Unknown | _Inconclusive:
        if isinstance(value, _Unknown | _Inconclusive | bool):
            return value
        raise self.fail(f"{op!r} needs true or false, got {value!r}; compare it first", node)

    def unary(self, node: _Unary) -> _Result:
        operand = self.eval(node.operand)
        if node.op == "not":
            truth = self.truth(operand, node.operand, "not")
            return truth if isinstance(truth, _Unknown | _Inconclusive) else not truth
        number = self.number(operand, node.operand, "-")
        if isinstance(number, _Unknown):
            return number
        if isinstance(number, Estimate):
            return combine("*", number, -1.0)
        return -number

    def binary(self, node: _Binary) -> _Result:
        left = self.number(self.eval(node.left), node.left, node.op)
        right = self.number(self.eval(node.right), node.right, node.op)
        if isinstance(left, _Unknown) or isinstance(right, _Unknown):
            return _UNKNOWN
        text = self.expression.source[node.start : node.end]
        try:
            result = combine(node.op, left, right)
        except ZeroDivisionError as error:
            detail = "" if str(error) == "division by zero" else f" ({error})"
            return self.unknown(f"division by zero in {text!r}{detail}")
        if math.isnan(result.mean if isinstance(result, Estimate) else result):
            return self.unknown(f"{text!r} is not a number")
        return result

    def logic(self, node: _Logic) -> _Result:
        # Every operand is evaluated (no short circuit) so each fact it mentions is reported.
        truths = [self.truth(self.eval(o), o, node.op) for o in node.operands]
        decisive = node.op == "or"  # True decides an "or", False decides an "and"
        if decisive in truths:
            return decisive
        if any(isinstance(t, _Unknown) for t in truths):
            return _UNKNOWN
        if any(isinstance(t, _Inconclusive) for t in truths):
            return _INCONCLUSIVE
        return not decisive

    def compare(self, node: _Compare) -> _Result:
        values = [self.eval(o) for o in node.operands]
        for operand, value in zip(node.operands, values, strict=True):
            text = self.expression.source[operand.start : operand.end]
            if isinstance(operand, _Binary | _Call) and isinstance(value, float | Estimate):
                self.computed[text] = value.mean if isinstance(value, Estimate) else value
            if isinstance(value, Estimate) and not value.exact:
                self.intervals[text] = value
        outcome: bool | _Unknown | _Inconclusive = True
        for i, op in enumerate(node.ops):
            left, right = values[i], values[i + 1]
            if isinstance(left, _Unknown) or isinstance(right, _Unknown):
                if outcome is True or isinstance(outcome, _Inconclusive):
                    outcome = _UNKNOWN
                continue
            if isinstance(left, _Inconclusive) or isinstance(right, _Inconclusive):
                raise self.fail(
                    "a comparison cannot be compared again; join conditions with 'and' / 'or'",
                    _Node(node.operands[i].start, node.operands[i + 1].end),
                )
            if isinstance(left, Estimate) or isinstance(right, Estimate):
                verdict = self.uncertain(op, left, right, node.operands[i], node.operands[i + 1])
                if verdict is None:
                    if outcome is True:
                        outcome = _INCONCLUSIVE
                elif not verdict:
                    outcome = False
                continue
            if not _comparable(left, right, op):
                raise self.fail(
                    f"cannot compare {left!r} {op} {right!r}; "
                    + (
                        "strings and booleans only support '==' and '!='"
                        if type(left) is type(right)
                        else "both sides must be numbers, strings or booleans alike"
                    ),
                    _Node(node.operands[i].start, node.operands[i + 1].end),
                )
            if not _apply(op, left, right):
                outcome = False
        return outcome

    def uncertain(
        self, op: str, left: Value, right: Value, left_node: _Node, right_node: _Node
    ) -> bool | None:
        """Three-way ``left op right`` where one side is an estimate (None: inconclusive)."""
        for value, other in ((left, right), (right, left)):
            if not _numeric(value) and not isinstance(value, Estimate):
                raise self.fail(
                    f"cannot compare {other!r} {op} {value!r}; both sides must be numbers",
                    _Node(left_node.start, right_node.end),
                )
        a = left if isinstance(left, Estimate) else float(left)
        b = right if isinstance(right, Estimate) else float(right)
        if isinstance(a, Estimate) and isinstance(b, Estimate):
            difference = combine("-", a, b)
            assert isinstance(difference, Estimate)
            left_text = self.expression.source[left_node.start : left_node.end]
            right_text = self.expression.source[right_node.start : right_node.end]
            self.intervals[f"{left_text} - {right_text}"] = difference
        verdict = compare(op, a, b)
        if verdict is None:
            if isinstance(a, Estimate) and isinstance(b, Estimate):
                d = combine("-", a, b)
                assert isinstance(d, Estimate)
                gap, sd = d.mean, d.sd
            else:
                est = a if isinstance(a, Estimate) else b
                threshold = b if isinstance(a, Estimate) else a
                assert isinstance(est, Estimate) and not isinstance(threshold, Estimate)
                gap, sd = est.mean - threshold, est.sd
            self.resolve.append((repetitions_to_resolve(gap, sd), abs(gap)))
        return verdict

    def call(self, node: _Call) -> _Result:
        function, _low, _high = FUNCTIONS[node.function]
        args = [self.number(self.eval(a), a, f"{node.function}()") for a in node.args]
        known = [a for a in args if not isinstance(a, _Unknown)]
        if len(known) != len(args):
            return _UNKNOWN
        if any(isinstance(a, Estimate) for a in known):
            # Interval arithmetic on the ends: min, max and abs are monotone piecewise, so the
            # ends (and the mean) map through them; per-seed pairing is not kept.
            ends = [
                a if isinstance(a, Estimate) else Estimate(a, a, a, 1, 0.0, math.inf, "exact")
                for a in known
            ]
            mean = float(function(*(e.mean for e in ends)))
            low = float(function(*(e.low for e in ends)))
            high = float(function(*(e.high for e in ends)))
            if node.function == "abs" and ends[0].low < 0 < ends[0].high:
                low, high = 0.0, max(abs(ends[0].low), abs(ends[0].high))
            low, high = min(low, high), max(low, high)
            se = max(e.se for e in ends)
            n = min(e.n for e in ends)
            return Estimate(mean, low, high, n, se, min(e.df for e in ends), "interval")
        return float(function(*known))


def _numeric(value: Value) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool)


def _comparable(left: Value, right: Value, op: str) -> bool:
    if _numeric(left) and _numeric(right):
        return True
    if type(left) is type(right):  # str/str or bool/bool
        return op in ("==", "!=")
    return False


def _apply(op: str, left: Value, right: Value) -> bool:
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    assert not isinstance(left, Estimate | str) and not isinstance(right, Estimate | str)
    a, b = float(left), float(right)
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def evaluate(
    expression: Expression,
    lookup: Lookup,
    *,
    suggest: Callable[[str], Sequence[str]] | None = None,
) -> Evaluation:
    """Evaluate against facts with three-valued logic.

    ``unknown and false`` is false and ``unknown or true`` is true (the missing fact could not
    change the result); anything else that touches a missing fact is unknown.

    Args:
        expression: From :func:`parse`.
        lookup: Resolves dotted names (see :data:`Lookup`).
        suggest: Gives the nearest available fact names for an unknown one (default: the
            names ``lookup`` knows cannot be listed, so none are suggested).

    Raises:
        ExpressionError: an unknown name or a type mismatch, with a caret at it.
    """
    evaluator = _Evaluator(expression, lookup, suggest or (lambda _name: ()))
    result = evaluator.eval(expression._tree)
    if isinstance(result, _Unknown):
        return Evaluation(
            None,
            evaluator.values,
            tuple(evaluator.reasons),
            evaluator.computed,
            intervals=evaluator.intervals,
        )
    if isinstance(result, _Inconclusive):
        # The hardest comparison decides how many repetitions it takes (None: no number would).
        needs = [n for n, _ in evaluator.resolve]
        worst = max(evaluator.resolve, key=lambda r: math.inf if r[0] is None else r[0])
        return Evaluation(
            None,
            evaluator.values,
            (),
            evaluator.computed,
            inconclusive=True,
            intervals=evaluator.intervals,
            resolve=None if None in needs else worst[0],
            gap=worst[1],
        )
    return Evaluation(
        result, evaluator.values, (), evaluator.computed, intervals=evaluator.intervals
    )
