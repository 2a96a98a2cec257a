"""MultiPL-E-style translation of HumanEval prompts and tests to R and Racket.

Our own implementation of the idea of Cassano et al. (MultiPL-E): the Python signature and
docstring become a target-language function header with the docstring as comments (doctest
examples translated too), and the ``check`` function's assertions become target-language tests.

Values are translated with the Python type annotations in hand (``List[int]`` -> an R atomic
vector ``c(...)``, ``List[List[int]]`` -> an R ``list(...)``; a ``float`` written ``3`` in a
test becomes ``3.0`` in Racket, where ``(equal? 3 3.0)`` is false):

======================  ===========================  ==========================
Python                  R                            Racket
======================  ===========================  ==========================
None                    NULL                         #f
True / False            TRUE / FALSE                 #t / #f
int, float              1, 2.5, Inf                  1, 2.5, +inf.0
str                     "a\\n"                       "a\\n"
list of scalars         c(1, 2)  (empty: c())        (list 1 2)
list of lists, tuple    list(c(1), c(2))             (list (list 1) (list 2))
dict                    list("a" = 1)                (hash "a" 1)
======================  ===========================  ==========================

R tests are ``stopifnot(isTRUE(all.equal(candidate(...), expected)))``; Racket tests are
rackunit ``check-equal?`` (``check-within`` for ``abs(candidate(...) - x) < tol``) and pass
only with exit status 0 and an empty stderr. A problem whose prompt defines helper functions
or whose assertions are not of these shapes is skipped (``translate`` returns None), as
MultiPL-E does.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Any, Literal

from evals.humaneval import Problem

Language = Literal["r", "racket"]
LANGUAGES: tuple[Language, ...] = ("r", "racket")

#: Where generation stops: the next top-level item (MultiPL-E's stop sequences).
STOPS: dict[Language, tuple[str, ...]] = {
    "r": ("\n#", "\n```", "\ntest_humaneval"),
    "racket": ("\n(define ", "\n#|", "\n;", "\n(require", "\n```"),
}
FILE_NAMES: dict[Language, str] = {"r": "humaneval.R", "racket": "humaneval.rkt"}


class Untranslatable(Exception):
    """A value, annotation or assertion outside the supported subset."""


@dataclass(frozen=True)
class TranslatedProblem:
    """One HumanEval problem in a target language."""

    task_id: str
    language: Language
    name: str
    #: Comments + function header; the model writes the body (and the closing bracket).
    prompt: str
    #: Test code appended after prompt + completion.
    tests: str
    python_prompt: str

    @property
    def stop(self) -> tuple[str, ...]:
        return STOPS[self.language]

    def program(self, completion: str) -> str:
        """The executable file: prompt, completion, tests."""
        return f"{self.prompt}{completion}\n\n{self.tests}"


# -- types ----------------------------------------------------------------------------------

Shape = tuple  # ("list", elem) | ("tuple", [elems]) | ("dict", key, value) | ("float",) | ("any",) | ...


def shape_of(annotation: ast.expr | None) -> Shape:
    """A small type tree from a Python annotation (unknown -> ("any",))."""
    if annotation is None:
        return ("any",)
    if isinstance(annotation, ast.Name):
        return {"int": ("int",), "float": ("float",), "str": ("str",), "bool": ("bool",),
                "list": ("list", ("any",)), "tuple": ("tuple", []), "dict": ("dict", ("any",), ("any",))
                }.get(annotation.id, ("any",))
    if isinstance(annotation, ast.Subscript) and isinstance(annotation.value, ast.Name):
        head = annotation.value.id.lower()
        inner = annotation.slice
        items = list(inner.elts) if isinstance(inner, ast.Tuple) else [inner]
        if head == "list":
            return ("list", shape_of(items[0]))
        if head == "tuple":
            return ("tuple", [shape_of(i) for i in items])
        if head == "dict":
            return ("dict", shape_of(items[0]), shape_of(items[-1]))
        if head == "optional":
            return shape_of(items[0])
    return ("any",)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")


def _element_shape(shape: Shape, index: int) -> Shape:
    if shape[0] == "list":
        return shape[1]
    if shape[0] == "tuple" and index < len(shape[1]):
        return shape[1][index]
    return ("any",)


def _number(value: float | int, shape: Shape, inf: str, neg_inf: str, nan: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return nan
    if isinstance(value, float) and math.isinf(value):
        return inf if value > 0 else neg_inf
    if shape[0] == "float" or isinstance(value, float):
        return repr(float(value))
    return str(value)


def to_r(value: Any, shape: Shape = ("any",)) -> str:
    """An R expression equal (under ``all.equal``) to a Python value."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return _number(value, shape, "Inf", "-Inf", "NaN")
    if isinstance(value, str):
        return f'"{_escape(value)}"'
    if isinstance(value, dict):
        if not all(isinstance(k, (str, int)) for k in value):
            raise Untranslatable("dict key")
        items = ", ".join(f'"{_escape(str(k))}" = {to_r(v, shape[2] if shape[0] == "dict" else ("any",))}'
                          for k, v in value.items())
        return f"list({items})"
    if isinstance(value, (list, tuple)):
        parts = [to_r(v, _element_shape(shape, i)) for i, v in enumerate(value)]
        element = shape[1] if shape[0] == "list" else ("any",)
        nested = element[0] in ("list", "tuple", "dict") or not all(_is_scalar(v) for v in value)
        atomic = isinstance(value, list) and not nested and all(v is not None for v in value)
        return f"c({', '.join(parts)})" if atomic else f"list({', '.join(parts)})"
    raise Untranslatable(type(value).__name__)


def to_racket(value: Any, shape: Shape = ("any",)) -> str:
    """A Racket expression ``equal?`` to a Python value."""
    if value is None:
        return "#f"
    if isinstance(value, bool):
        return "#t" if value else "#f"
    if isinstance(value, (int, float)):
        return _number(value, shape, "+inf.0", "-inf.0", "+nan.0")
    if isinstance(value, str):
        return f'"{_escape(value)}"'
    if isinstance(value, dict):
        value_shape = shape[2] if shape[0] == "dict" else ("any",)
        items = " ".join(f"{to_racket(k)} {to_racket(v, value_shape)}" for k, v in value.items())
        return f"(hash {items})".replace("(hash )", "(hash)")
    if isinstance(value, (list, tuple)):
        parts = [to_racket(v, _element_shape(shape, i)) for i, v in enumerate(value)]
        return f"(list {' '.join(parts)})" if parts else "(list)"
    raise Untranslatable(type(value).__name__)


RENDER = {"r": to_r, "racket": to_racket}


# -- prompts --------------------------------------------------------------------------------

def _call(language: Language, name: str, args: list[str]) -> str:
    return f"{name}({', '.join(args)})" if language == "r" else f"({' '.join([name, *args])})"


def _docstring_lines(doc: str, fn: ast.FunctionDef, language: Language) -> list[str]:
    """Docstring lines with ``>>> f(...)`` examples and their results translated when possible."""
    shapes = [shape_of(a.annotation) for a in fn.args.args]
    returns = shape_of(fn.returns)
    lines, translate_next = [], False
    for line in doc.splitlines():
        stripped = line.strip()
        if translate_next and stripped:
            translate_next = False
            try:
                lines.append(RENDER[language](ast.literal_eval(stripped), returns))
                continue
            except (ValueError, SyntaxError, Untranslatable, TypeError):
                pass
        if stripped.startswith(">>> "):
            try:
                call = ast.parse(stripped[4:], mode="eval").body
                if isinstance(call, ast.Call) and not call.keywords:
                    args = [RENDER[language](ast.literal_eval(a), _shape_at(shapes, i)) for i, a in enumerate(call.args)]
                    lines.append(">>> " + _call(language, fn.name, args))
                    translate_next = True
                    continue
            except (ValueError, SyntaxError, Untranslatable, TypeError):
                pass
        lines.append(line)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _shape_at(shapes: list[Shape], index: int) -> Shape:
    return shapes[index] if index < len(shapes) else ("any",)


def _target_function(problem: Problem) -> ast.FunctionDef:
    tree = ast.parse(problem.prompt)
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    if len(functions) != 1 or functions[0].name != problem.entry_point:
        raise Untranslatable("prompt defines helper functions")
    fn = functions[0]
    if fn.args.vararg or fn.args.kwarg or fn.args.kwonlyargs or fn.args.defaults:
        raise Untranslatable("signature")
    return fn


def _prompt(fn: ast.FunctionDef, language: Language) -> str:
    doc = ast.get_docstring(fn) or ""
    params = [a.arg for a in fn.args.args]
    if language == "r":
        comments = "".join(f"# {line}".rstrip() + "\n" for line in _docstring_lines(doc, fn, language))
        return f"{comments}{fn.name} <- function({', '.join(params)}) {{\n"
    comments = "".join(f";; {line}".rstrip() + "\n" for line in _docstring_lines(doc, fn, language))
    return f"#lang racket\n\n{comments}(define ({' '.join([fn.name, *params])})\n"


# -- tests ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Check:
    args: list[Any]
    expected: Any
    tolerance: float | None = None


def _candidate_call(node: ast.expr) -> list[Any] | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "candidate" and not node.keywords:
        try:
            return [ast.literal_eval(a) for a in node.args]
        except ValueError:
            raise Untranslatable("non-literal argument") from None
    return None


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise Untranslatable("non-literal expected value") from None


def _check_of(test: ast.expr) -> _Check | None:
    """One assertion -> a check; None for trivially true ones (``assert True``)."""
    if isinstance(test, ast.Constant) and test.value is True:
        return None
    args = _candidate_call(test)
    if args is not None:
        return _Check(args, True)
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and (args := _candidate_call(test.operand)) is not None:
        return _Check(args, False)
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, right, op = test.left, test.comparators[0], test.ops[0]
        if isinstance(op, (ast.Eq, ast.Is)):
            for call, other in ((left, right), (right, left)):
                if (args := _candidate_call(call)) is not None:
                    return _Check(args, _literal(other))
        # abs(candidate(...) - expected) < tolerance
        if isinstance(op, (ast.Lt, ast.LtE)) and isinstance(left, ast.Call) and getattr(left.func, "id", "") == "abs":
            inner = left.args[0] if left.args else None
            if isinstance(inner, ast.BinOp) and isinstance(inner.op, ast.Sub) and (args := _candidate_call(inner.left)) is not None:
                return _Check(args, float(_literal(inner.right)), float(_literal(right)))
    raise Untranslatable(f"assertion shape: {ast.unparse(test)[:60]}")


def _checks(test_code: str) -> list[_Check]:
    tree = ast.parse(test_code)
    check = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None)
    if check is None:
        raise Untranslatable("no check function")
    checks = []
    for stmt in check.body:
        if isinstance(stmt, ast.Assert):
            if (found := _check_of(stmt.test)) is not None:
                checks.append(found)
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a docstring or a bare string in the test body
        else:
            raise Untranslatable(f"statement: {type(stmt).__name__}")
    if not checks:
        raise Untranslatable("no assertions")
    return checks


def _tests(fn: ast.FunctionDef, checks: list[_Check], language: Language) -> str:
    shapes = [shape_of(a.annotation) for a in fn.args.args]
    returns = shape_of(fn.returns)
    render = RENDER[language]
    lines = []
    for check in checks:
        call = _call(language, "candidate", [render(a, _shape_at(shapes, i)) for i, a in enumerate(check.args)])
        expected = render(check.expected, returns if check.tolerance is None else ("float",))
        if language == "r":
            tolerance = f", tolerance = {check.tolerance!r}" if check.tolerance is not None else ""
            lines.append(f"    stopifnot(isTRUE(all.equal({call}, {expected}{tolerance})))")
        elif check.tolerance is not None:
            lines.append(f"    (check-within {call} {expected} {check.tolerance!r})")
        else:
            lines.append(f"    (check-equal? {call} {expected})")
    body = "\n".join(lines)
    if language == "r":
        return f"test_humaneval <- function() {{\n    candidate <- {fn.name}\n{body}\n}}\ntest_humaneval()\n"
    return (f"(require rackunit)\n\n(define (test-humaneval)\n  (let ([candidate {fn.name}])\n{body}\n  ))\n\n"
            "(test-humaneval)\n")


def translate(problem: Problem, language: Language) -> TranslatedProblem | None:
    """``problem`` in ``language``, or None when it uses something outside the supported subset."""
    try:
        fn = _target_function(problem)
        checks = _checks(problem.test)
        return TranslatedProblem(problem.task_id, language, fn.name, _prompt(fn, language),
                                 _tests(fn, checks, language), problem.prompt)
    except (Untranslatable, SyntaxError):
        return None


def translate_all(problems: list[Problem], language: Language) -> list[TranslatedProblem]:
    """Every problem that translates, in task order."""
    return [t for p in problems if (t := translate(p, language)) is not None]
