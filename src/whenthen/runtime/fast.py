"""The filter fast path: a rule's filter code turned into generated Python, compiled once per version.

The filter's bytecode is decompiled (it is an expression: short-circuit jumps nest properly)
into one Python expression, with the common comparisons against constants inlined and
everything else calling the same `ops` functions the VM uses. Any error while evaluating counts
as false, as in `vm.eval_filter`, so both give the same answer on every event.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from whenthen import regex
from whenthen.compiler.code import Code, RuleCode
from whenthen.compiler.opcodes import Opcode
from whenthen.runtime import ops
from whenthen.runtime.vm import BINARY, FunctionContext, call_function, eval_filter
from whenthen.values import UTC, render

Filter = Callable[..., bool]


def filter_equalities(rule_code: RuleCode) -> tuple[tuple[str, Any], ...]:
    """Top-level `field = constant` conjuncts that must hold for the rule's filter to be true
    (computed at code generation; the filter must still be evaluated on the candidates)."""
    return rule_code.equalities


def compile_filter(code: RuleCode) -> Filter:
    """A function `f(event, now=None) -> bool` giving exactly what `eval_filter` gives."""
    if code.filter is None:
        return _always_true
    try:
        source, namespace = filter_source(code)
    except _Unsupported:
        return lambda event, now=None: eval_filter(code, event, now)
    exec(compile(source, f"<filter of {code.name}>", "exec"), namespace)  # our own generated code
    return namespace["_filter"]


def _always_true(event: dict[str, Any], now: dt.datetime | None = None) -> bool:
    return True


# ----------------------------------------------------------------------------- code generation


class _Unsupported(Exception):
    """The filter uses an instruction the decompiler does not handle (the VM is used instead)."""


@dataclass(frozen=True)
class _Val:
    """A symbolic stack item: Python source, whether it is surely a bool, and a known constant."""

    src: str
    strict: bool = False
    is_const: bool = False
    value: Any = None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Generator:
    def __init__(self, code: Code, timezone: str):
        self.code = code
        self.timezone = timezone
        self.namespace: dict[str, Any] = {
            "_render": render,
            "_call": self._call_function,
            "_attr": ops.attr,
            "_is_empty": ops.is_empty,
            "_neg": ops.neg,
            "_build_string": ops.build_string,
            "_str": str,
            "_bool": bool,
        }
        for op, fn in BINARY.items():
            self.namespace[f"_{op.name.lower()}"] = fn
        self.temps = 0

    def _call_function(self, name: str, args: list[Any], now: dt.datetime | None) -> Any:
        return call_function(name, args, FunctionContext(now or dt.datetime.now(UTC), self.timezone))

    # -- names in the generated namespace
    def bind(self, value: Any) -> str:
        name = f"_k{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def temp(self) -> str:
        self.temps += 1
        return f"_t{self.temps}"

    def const(self, value: Any) -> _Val:
        if value is None or isinstance(value, (bool, str, int)) or (
            isinstance(value, float) and math.isfinite(value)
        ):
            return _Val(repr(value), isinstance(value, bool), True, value)
        return _Val(self.bind(value), False, True, value)

    # -- the decompiler
    def region(self, start: int, end: int) -> tuple[list[_Val], int]:
        """Decompile instructions [start, end) into the symbolic stack they leave."""
        stack: list[_Val] = []
        pc = start
        code = self.code
        while pc < end:
            op, arg = code.instrs[pc]
            pc += 1
            if op is Opcode.CONST:
                stack.append(self.const(code.consts[arg]))
            elif op is Opcode.LOAD_FIELD:
                stack.append(_Val(f"event.get({code.names[arg]!r})"))
            elif op is Opcode.LOAD_EVENT:
                stack.append(_Val("event"))
            elif op is Opcode.ATTR:
                obj = stack.pop()
                stack.append(_Val(f"_attr({obj.src}, {code.names[arg]!r})"))
            elif op in (Opcode.JUMP_IF_FALSE_OR_POP, Opcode.JUMP_IF_TRUE_OR_POP):
                left = self.strict(stack.pop())
                inner, _ = self.region(pc, arg)
                if len(inner) != 1:
                    raise _Unsupported("unbalanced short-circuit region")
                right = self.strict(inner[0])
                word = "and" if op is Opcode.JUMP_IF_FALSE_OR_POP else "or"
                stack.append(_Val(f"({left.src} {word} {right.src})", True))
                pc = arg
            elif op is Opcode.BOOL:
                stack.append(self.strict(stack.pop()))
            elif op is Opcode.NOT:
                value = stack.pop()
                src = f"(not {value.src})" if value.strict else f"({value.src} is not True)"
                stack.append(_Val(src, True))
            elif op is Opcode.IS_NULL:
                stack.append(_Val(f"({stack.pop().src} is None)", True))
            elif op is Opcode.IS_EMPTY:
                stack.append(_Val(f"_is_empty({stack.pop().src})", True))
            elif op is Opcode.NEG:
                stack.append(_Val(f"_neg({stack.pop().src})"))
            elif op in BINARY:
                right = stack.pop()
                left = stack.pop()
                stack.append(self.binary(op, left, right))
            elif op is Opcode.BUILD_LIST:
                items = stack[len(stack) - arg:] if arg else []
                del stack[len(stack) - arg:]
                if all(item.is_const for item in items):
                    stack.append(_Val(f"list({self.bind(tuple(i.value for i in items))})", False, True,
                                      [i.value for i in items]))
                else:
                    stack.append(_Val("[" + ", ".join(i.src for i in items) + "]"))
            elif op is Opcode.BUILD_OBJECT:
                keys = code.consts[arg]
                items = stack[len(stack) - len(keys):] if keys else []
                del stack[len(stack) - len(keys):]
                # keys are names (SPEC 2.3), so their repr is a plain Python string literal
                stack.append(_Val("{" + ", ".join(f"{k!r}: {v.src}" for k, v in zip(keys, items, strict=True)) + "}"))
            elif op is Opcode.FORMAT:
                stack.append(_Val(f"_render({stack.pop().src}, {self.timezone!r})"))
            elif op is Opcode.BUILD_STRING:
                parts = stack[len(stack) - arg:] if arg else []
                del stack[len(stack) - arg:]
                stack.append(_Val("_build_string((" + "".join(p.src + ", " for p in parts) + "))"))
            elif op is Opcode.CALL_FUNC:
                name, count = code.consts[arg]
                args = stack[len(stack) - count:] if count else []
                del stack[len(stack) - count:]
                stack.append(_Val(f"_call({name!r}, [{', '.join(a.src for a in args)}], now)"))
            elif op is Opcode.RETURN:
                return stack, pc
            else:
                raise _Unsupported(op.name)
        return stack, pc

    def strict(self, value: _Val) -> _Val:
        return value if value.strict else _Val(f"({value.src} is True)", True)

    def binary(self, op: Opcode, left: _Val, right: _Val) -> _Val:
        """Inline the common comparisons with a constant; call the VM's function otherwise."""
        if op in (Opcode.EQ, Opcode.NE):
            inlined = self.equality(left, right) or self.equality(right, left)
            if inlined is not None:
                return inlined if op is Opcode.EQ else _Val(f"(not {inlined.src})", True)
        elif op in (Opcode.LT, Opcode.LE, Opcode.GT, Opcode.GE):
            symbol = {Opcode.LT: "<", Opcode.LE: "<=", Opcode.GT: ">", Opcode.GE: ">="}[op]
            for value, other, pattern in ((right, left, "{t} {op} {c}"), (left, right, "{c} {op} {t}")):
                if value.is_const and (isinstance(value.value, str) or _is_number(value.value)):
                    t = self.temp()
                    test = pattern.format(t=t, op=symbol, c=value.src)
                    return _Val(f"(({t} := {other.src}) is not None and {test})", True)
        elif op in (Opcode.STARTS_WITH, Opcode.ENDS_WITH) and right.is_const and isinstance(right.value, str):
            t = self.temp()
            method = "startswith" if op is Opcode.STARTS_WITH else "endswith"
            return _Val(f"(({t} := {left.src}) is not None and {t}.{method}({right.src}))", True)
        elif op in (Opcode.IN, Opcode.NOT_IN) and right.is_const and isinstance(right.value, list) \
                and right.value and all(isinstance(v, str) for v in right.value):
            t = self.temp()
            members = self.bind(frozenset(right.value))
            if op is Opcode.IN:
                return _Val(f"(({t} := {left.src}).__class__ is str and {t} in {members})", True)
            return _Val(f"(({t} := {left.src}) is not None and ({t}.__class__ is not str "
                        f"or {t} not in {members}))", True)
        elif op is Opcode.MATCHES and right.is_const and isinstance(right.value, str):
            try:
                found = self.bind(regex.searcher(right.value))
            except regex.RegexError:
                found = None  # the VM's matches reports it as a run-time failure
            if found is not None:
                t = self.temp()
                return _Val(f"(({t} := {left.src}) is not None and {found}({t}))", True)
        strict = op not in (Opcode.ADD, Opcode.SUB, Opcode.MUL, Opcode.DIV, Opcode.MOD)
        return _Val(f"_{op.name.lower()}({left.src}, {right.src})", strict)

    def equality(self, value: _Val, other: _Val) -> _Val | None:
        """`other = value` inlined when `value` is a constant whose equality Python gets right."""
        if not value.is_const:
            return None
        v = value.value
        if v is None or isinstance(v, bool):
            return _Val(f"({other.src} is {v!r})", True)
        if isinstance(v, str):
            return _Val(f"({other.src} == {value.src})", True)
        if _is_number(v):
            t = self.temp()  # Python says True == 1; whenthen does not
            return _Val(f"(({t} := {other.src}) == {value.src} and {t}.__class__ is not bool)", True)
        return None


def filter_source(code: RuleCode) -> tuple[str, dict[str, Any]]:
    """The generated Python source of a rule's filter and the namespace it runs in."""
    if code.filter is None:
        raise _Unsupported("no filter")
    generator = _Generator(code.filter, code.timezone)
    stack, _ = generator.region(0, len(code.filter.instrs))
    if len(stack) != 1:
        raise _Unsupported("filter code does not return one value")
    result = generator.strict(stack[0])
    source = (
        "def _filter(event, now=None):\n"
        "    try:\n"
        f"        return {result.src}\n"
        "    except Exception:\n"
        "        return False\n"
    )
    return source, generator.namespace
