"""The resumable VM: runs a rule's body on a plain-data `Frame` until it is done, waits or fails.

A frame holds everything a run needs to continue (pc, stack, locals, the start event, emit depth,
the action step counter, the pending wait), so the engine snapshots it at every wait point and
resumes it later, in another process if need be. Side effects go through the `Host`. Conditions
(filters, `wait for … where`, `exit when … where`) are evaluated by the same interpreter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from whenthen.calendar import describe_window, next_opening
from whenthen.compiler.code import BytecodeError, Code, RuleCode
from whenthen.compiler.opcodes import LOOP_LIMIT, Opcode
from whenthen.diagnostics import RuntimeFailure
from whenthen.runtime import ops
from whenthen.runtime.policies import split_case
from whenthen.stdlib.functions import FUNCTIONS, FunctionContext
from whenthen.values import UTC, UnstorableValue, normalize, pack, render, to_json, type_name, unpack

# instructions per activation: room for a full 10,000-iteration loop (SPEC 2.5) of ~100 instructions
# per iteration; nested loops that never wait are what it stops
MAX_STEPS = 1_000_000
MAX_EMIT_DEPTH = 32
FRAME_FORMAT = 1

# Binary opcodes and the functions that implement them (shared with the fast path).
BINARY: dict[Opcode, Callable[[Any, Any], Any]] = {
    Opcode.ADD: ops.add,
    Opcode.SUB: ops.sub,
    Opcode.MUL: ops.mul,
    Opcode.DIV: ops.div,
    Opcode.MOD: ops.mod,
    Opcode.EQ: ops.eq,
    Opcode.NE: ops.ne,
    Opcode.LT: ops.lt,
    Opcode.LE: ops.le,
    Opcode.GT: ops.gt,
    Opcode.GE: ops.ge,
    Opcode.CONTAINS: ops.contains,
    Opcode.STARTS_WITH: ops.starts_with,
    Opcode.ENDS_WITH: ops.ends_with,
    Opcode.IN: ops.in_,
    Opcode.NOT_IN: ops.not_in,
    Opcode.MATCHES: ops.matches,
}

UNARY: dict[Opcode, Callable[[Any], Any]] = {
    Opcode.NOT: ops.not_,
    Opcode.NEG: ops.neg,
    Opcode.IS_NULL: ops.is_null,
    Opcode.IS_EMPTY: ops.is_empty,
    Opcode.BOOL: ops.truthy,
}


# The same, as lists indexed by opcode value: Enum hashing is slow, list indexing is not.
_BINARY_BY_OP: list[Callable[[Any, Any], Any] | None] = [BINARY.get(op) for op in range(max(Opcode) + 1)]
_UNARY_BY_OP: list[Callable[[Any], Any] | None] = [UNARY.get(op) for op in range(max(Opcode) + 1)]


# Opcodes as module constants: looking an Enum member up on its class costs ~60 ns in the loop.
_ATTR = Opcode.ATTR
_BUILD_LIST = Opcode.BUILD_LIST
_BUILD_STRING = Opcode.BUILD_STRING
_BUILD_OBJECT = Opcode.BUILD_OBJECT
_CALL_FUNC = Opcode.CALL_FUNC
_CONST = Opcode.CONST
_DUP = Opcode.DUP
_FORMAT = Opcode.FORMAT
_HALT = Opcode.HALT
_JUMP = Opcode.JUMP
_JUMP_IF_FALSE = Opcode.JUMP_IF_FALSE
_JUMP_IF_FALSE_OR_POP = Opcode.JUMP_IF_FALSE_OR_POP
_JUMP_IF_TRUE = Opcode.JUMP_IF_TRUE
_JUMP_IF_TRUE_OR_POP = Opcode.JUMP_IF_TRUE_OR_POP
_LOAD_CLAUSE = Opcode.LOAD_CLAUSE
_LOAD_EVENT = Opcode.LOAD_EVENT
_LOAD_FIELD = Opcode.LOAD_FIELD
_LOAD_LOCAL = Opcode.LOAD_LOCAL
_POP = Opcode.POP
_RETURN = Opcode.RETURN
_STORE_LOCAL = Opcode.STORE_LOCAL
_FOR_ITER = Opcode.FOR_ITER
_FOR_RANGE = Opcode.FOR_RANGE
_LOOP_COUNT = Opcode.LOOP_COUNT
_LOOP_LIST = Opcode.LOOP_LIST
_WAIT_WINDOW = Opcode.WAIT_WINDOW


# ----------------------------------------------------------------------------- results and host


@dataclass(frozen=True)
class Done:
    """The run completed (end of body or `stop`)."""


@dataclass(frozen=True)
class Suspended:
    """The run waits. `deadline` (UTC) is when it resumes, or times out for `wait for`;
    `wait_trigger` is the awaited trigger of a `wait for`; `correlation` holds the (field of the
    awaited event, value) equalities its `where` requires, known at wait time."""

    deadline: dt.datetime | None
    wait_trigger: str | None = None
    correlation: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Failed:
    """The run failed; the position is the statement or expression that failed (0, 0 if unknown)."""

    error: str
    line: int
    column: int


Result = Done | Suspended | Failed


class Host(Protocol):
    """What the VM needs from the engine (or a simulation, or a test). A host may also have
    `run_id() -> int`, the run's id, which a `split` without `by` hashes (SPEC 2.13)."""

    def now(self) -> dt.datetime: ...

    def call_action(self, name: str, args: dict[str, Any], step: int, due: dt.datetime | None = None) -> Any:
        """Call an action; `due` is given only for a delayed one (SPEC 2.12): when it was first due."""
        ...

    def emit(self, trigger: str, data: dict[str, Any], depth: int) -> None: ...

    def on_step(self, step: dict[str, Any]) -> None: ...


class HostAbort(Exception):  # noqa: N818 - a signal, not an error of the run
    """Raised by a host inside `call_action`/`emit` to stop the activation without failing the run
    (a lost lease, a simulated crash): it propagates out of `run`, the frame is left as it was at
    the last snapshot the engine took."""


# ----------------------------------------------------------------------------- frames


@dataclass
class Frame:
    """A run's state, plain data. `pending` describes the wait the run is suspended on:
    {"kind": "wait" | "until" | "for", "deadline": datetime | None, "trigger": str | None,
    "where": index of the `wait for … where` code in body.codes or -1, "correlation": [[f, v]…]}."""

    event: dict[str, Any]
    pc: int = 0
    stack: list[Any] = field(default_factory=list)
    locals: dict[str, Any] = field(default_factory=dict)
    depth: int = 0
    step: int = 0  # actions called so far: the idempotency step of the next action
    pending: dict[str, Any] | None = None
    # Not in the snapshot: while resuming from a sending-window wait, the time the delayed action
    # was first due (SPEC 2.12), handed from WAIT_WINDOW to the CALL_ACTION after it.
    delayed: dt.datetime | None = field(default=None, compare=False)
    due: dt.datetime | None = field(default=None, compare=False)

    def encode(self) -> bytes:
        return pack([FRAME_FORMAT, self.pc, self.stack, self.locals, self.event, self.depth,
                     self.step, self.pending])

    @classmethod
    def decode(cls, blob: bytes) -> Frame:
        try:
            data = unpack(bytes(blob))
            version, pc, stack, locals_, event, depth, step, pending = data
        except Exception as exc:  # msgpack raises many kinds of errors on garbage
            raise BytecodeError(f"corrupt run snapshot: {exc}") from None
        if version != FRAME_FORMAT:
            raise BytecodeError(f"run snapshot format {version} is not supported (expected {FRAME_FORMAT})")
        if not (isinstance(pc, int) and isinstance(stack, list) and isinstance(locals_, dict)
                and isinstance(event, dict) and isinstance(depth, int) and isinstance(step, int)
                and (pending is None or isinstance(pending, dict))):
            raise BytecodeError("corrupt run snapshot: bad fields")
        return cls(event, pc, stack, locals_, depth, step, pending)


def start_frame(code: RuleCode, event: dict[str, Any], depth: int = 0) -> Frame:
    """A frame at the start of a rule's body, for a run started by `event` at emit `depth`."""
    return Frame(event=event, depth=depth)


# ----------------------------------------------------------------------------- functions


def call_function(name: str, args: list[Any], ctx: FunctionContext) -> Any:
    """Call a stdlib function: null in, null out unless the function says otherwise."""
    sig = FUNCTIONS.get(name)
    if sig is None:
        raise RuntimeFailure(f"unknown function {name}()")
    if sig.null_in_null_out and any(a is None for a in args):
        return None
    try:
        return sig.impl(ctx, *args)
    except RuntimeFailure:
        raise
    except Exception as exc:
        raise RuntimeFailure(f"{name}(): {exc}") from None


# ----------------------------------------------------------------------------- the interpreter


class _Return:
    """What RETURN hands back from the interpreter loop (distinct from Done and Suspended)."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


def _position_error(code: Code, pc: int, error: str) -> Failed:
    line, column = code.position(pc)
    return Failed(error, line, column)


def _interpret(
    code: Code,
    frame: Frame,
    host: Host | None,
    timezone: str,
    clause: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
    budget: int = MAX_STEPS,
) -> Any:
    """Execute `code` from frame.pc. Returns a _Return (RETURN's value), Done, or a Suspended (with
    the frame advanced past the wait); raises RuntimeFailure (with `.pc` set) on a runtime error."""
    instrs = code.instrs
    consts = code.consts
    names = code.names
    stack = frame.stack
    locals_ = frame.locals
    event = frame.event
    pc = frame.pc
    steps = 0
    binary_by_op = _BINARY_BY_OP
    unary_by_op = _UNARY_BY_OP
    try:
        while True:
            op, arg = instrs[pc]
            steps += 1
            if steps > budget:
                raise RuntimeFailure(f"step budget exceeded: more than {budget} instructions in one activation")
            pc += 1
            fn = binary_by_op[op]
            if fn is not None:
                right = stack.pop()
                stack[-1] = fn(stack[-1], right)
            elif op is _CONST:
                stack.append(consts[arg])
            elif op is _LOAD_FIELD:
                stack.append(event.get(names[arg]))
            elif op is _LOAD_LOCAL:
                stack.append(locals_.get(names[arg]))
            elif op is _LOAD_CLAUSE:
                stack.append(None if clause is None else clause.get(names[arg]))
            elif op is _LOAD_EVENT:
                stack.append(event)
            elif op is _STORE_LOCAL:
                locals_[names[arg]] = stack.pop()
            elif op is _ATTR:
                stack[-1] = ops.attr(stack[-1], names[arg])
            elif unary_by_op[op] is not None:
                stack[-1] = unary_by_op[op](stack[-1])
            elif op is _JUMP:
                pc = arg
            elif op is _JUMP_IF_FALSE:
                if stack.pop() is not True:
                    pc = arg
            elif op is _JUMP_IF_TRUE:
                if stack.pop() is True:
                    pc = arg
            elif op is _JUMP_IF_FALSE_OR_POP:
                if stack[-1] is not True:
                    stack[-1] = False
                    pc = arg
                else:
                    stack.pop()
            elif op is _JUMP_IF_TRUE_OR_POP:
                if stack[-1] is True:
                    pc = arg
                else:
                    stack.pop()
            elif op is _FOR_ITER:
                i = stack[-1]
                items = stack[-2]
                if i < len(items):
                    stack[-1] = i + 1
                    stack.append(items[i])
                else:
                    del stack[-2:]
                    pc = arg
            elif op is _FOR_RANGE:
                i = stack[-1]
                if i < stack[-2]:
                    stack[-1] = i + 1
                else:
                    del stack[-2:]
                    pc = arg
            elif op is _LOOP_COUNT:
                stack[-1] = _loop_count(stack[-1])
                stack.append(0)
            elif op is _LOOP_LIST:
                stack[-1] = _loop_items(stack[-1])
                stack.append(0)
            elif op is _POP:
                stack.pop()
            elif op is _DUP:
                stack.append(stack[-1])
            elif op is _BUILD_LIST:
                items = stack[len(stack) - arg:] if arg else []
                del stack[len(stack) - arg:]
                stack.append(items)
            elif op is _BUILD_OBJECT:
                keys = consts[arg]
                values = stack[len(stack) - len(keys):] if keys else []
                del stack[len(stack) - len(keys):]
                stack.append(dict(zip(keys, values, strict=True)))
            elif op is _FORMAT:
                stack[-1] = render(stack[-1], timezone)
            elif op is _BUILD_STRING:
                parts = stack[len(stack) - arg:] if arg else []
                del stack[len(stack) - arg:]
                stack.append(ops.build_string(parts))
            elif op is _CALL_FUNC:
                name, count = consts[arg]
                args = stack[len(stack) - count:] if count else []
                del stack[len(stack) - count:]
                current = host.now() if host is not None else (now or dt.datetime.now(UTC))
                stack.append(call_function(name, args, FunctionContext(current, timezone)))
            elif op is _RETURN:
                frame.pc = pc
                return _Return(stack.pop())
            elif op is _HALT:
                frame.pc = pc - 1
                return Done()
            elif host is None:
                raise RuntimeFailure(f"{op.name} is not allowed in a condition")
            else:
                result = _effect(op, arg, consts, frame, stack, host, timezone, code, pc)
                if result is not None:
                    frame.pc = pc - 1 if op is _WAIT_WINDOW else pc  # a window is checked again on resume
                    return result
    except RuntimeFailure as failure:
        failure.pc = pc - 1  # type: ignore[attr-defined]
        frame.pc = pc - 1
        raise
    except (TypeError, ValueError, OverflowError, ArithmeticError, KeyError, IndexError, AttributeError) as exc:
        failure = RuntimeFailure(f"runtime error: {exc}")
        failure.pc = pc - 1  # type: ignore[attr-defined]
        frame.pc = pc - 1
        raise failure from None


def _loop_count(value: Any) -> int:
    """A `repeat` count (SPEC 2.5): null or ≤ 0 runs no iteration; above the limit fails."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuntimeFailure(f"repeat needs an int count, got {type_name(value)}")
    if value > LOOP_LIMIT:
        raise RuntimeFailure(f"loop limit exceeded: repeat {value} times (at most {LOOP_LIMIT:,} iterations)")
    return max(value, 0)


def _loop_items(value: Any) -> list[Any]:
    """A `for` list (SPEC 2.5): null has no items; more than the limit fails."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RuntimeFailure(f"for needs a list, got {type_name(value)}")
    if len(value) > LOOP_LIMIT:
        raise RuntimeFailure(f"loop limit exceeded: for over {len(value):,} items (at most {LOOP_LIMIT:,} iterations)")
    return value


def _effect(
    op: Opcode, arg: int, consts: tuple[Any, ...], frame: Frame, stack: list[Any], host: Host,
    timezone: str, code: Code, pc: int,
) -> Suspended | None:
    """The body-only instructions: actions, emits, branches and waits."""
    line, _ = code.position(pc - 1)
    if op is Opcode.CALL_ACTION:
        name, arg_names = consts[arg]
        count = len(arg_names)
        values = stack[len(stack) - count:] if count else []
        del stack[len(stack) - count:]
        step = frame.step
        frame.step += 1  # counted before the call: a resumed frame never reuses a step number
        due, frame.due = frame.due, None
        try:
            if due is None:
                result = host.call_action(name, dict(zip(arg_names, values, strict=True)), step)
            else:  # a delayed action (SPEC 2.12): its step records when it was due
                result = host.call_action(name, dict(zip(arg_names, values, strict=True)), step, due=due)
        except HostAbort:
            raise
        except Exception as exc:
            raise RuntimeFailure(f"action {name} failed: {exc}") from None
        try:
            stack.append(normalize(result))
        except UnstorableValue as exc:
            raise RuntimeFailure(f"action {name} returned an unusable result: {exc}") from None
        return None
    if op is Opcode.EMIT:
        trigger, field_names = consts[arg]
        count = len(field_names)
        values = stack[len(stack) - count:] if count else []
        del stack[len(stack) - count:]
        depth = frame.depth + 1
        if depth > MAX_EMIT_DEPTH:
            raise RuntimeFailure(f"emit depth exceeded: emitting {trigger} at depth {depth} (limit {MAX_EMIT_DEPTH})")
        data = dict(zip(field_names, values, strict=True))
        host.on_step({"kind": "emit", "line": line, "trigger": trigger, "data": to_json(data)})
        try:
            host.emit(trigger, data, depth)
        except HostAbort:
            raise
        except Exception as exc:  # e.g. the engine rejects the emitted data
            raise RuntimeFailure(f"emit {trigger} failed: {exc}") from None
        return None
    if op is Opcode.BRANCH:
        host.on_step({"kind": "branch", "line": line, "branch": consts[arg]})
        return None
    if op is Opcode.SPLIT:
        rule, number, shares, has_by = consts[arg]
        if has_by:
            case = split_case(rule, stack.pop(), shares)
        else:  # by the run: a host that cannot name the run (a test's) counts as run 0
            run_id = getattr(host, "run_id", None)
            case = split_case(rule, None, shares, run_id=run_id() if run_id is not None else 0)
        host.on_step({"kind": "branch", "line": line, "branch": f"case {case}", "split": number, "case": case,
                      "share": shares[case - 1]})
        stack.append(case)
        return None
    now = host.now()
    if op is Opcode.WAIT:
        duration = stack.pop()
        if not isinstance(duration, dt.timedelta):
            raise RuntimeFailure(f"wait needs a duration, got {type_name(duration)}")
        deadline = now + duration
        host.on_step({"kind": "wait", "line": line, "wait": "duration", "until": to_json(deadline)})
        if deadline <= now:
            return None
        frame.pending = {"kind": "wait", "deadline": deadline, "trigger": None, "where": -1, "correlation": []}
        return Suspended(deadline)
    if op is Opcode.WAIT_UNTIL:
        deadline = stack.pop()
        if not isinstance(deadline, dt.datetime):
            raise RuntimeFailure(f"wait until needs a datetime, got {type_name(deadline)}")
        if deadline.tzinfo is None:
            deadline = deadline.replace(tzinfo=UTC)
        host.on_step({"kind": "wait", "line": line, "wait": "until", "until": to_json(deadline)})
        if deadline <= now:
            return None  # a past datetime continues at once
        frame.pending = {"kind": "until", "deadline": deadline, "trigger": None, "where": -1, "correlation": []}
        return Suspended(deadline)
    if op is Opcode.WAIT_FOR:
        trigger, where, has_within, fields = consts[arg]
        count = len(fields)
        correlation = [list(pair) for pair in zip(fields, stack[len(stack) - count:], strict=True)]
        del stack[len(stack) - count:]
        deadline = None
        if has_within:
            within = stack.pop()
            if not isinstance(within, dt.timedelta):
                raise RuntimeFailure(f"wait for … within needs a duration, got {type_name(within)}")
            deadline = now + within
        host.on_step({"kind": "wait", "line": line, "wait": "for", "trigger": trigger,
                      "until": to_json(deadline), "correlation": to_json(dict(correlation))})
        frame.pending = {"kind": "for", "deadline": deadline, "trigger": trigger, "where": where,
                         "correlation": correlation}
        return Suspended(deadline, trigger, tuple((f, v) for f, v in correlation))
    if op is Opcode.WAIT_WINDOW:
        return _window(consts[arg], frame, host, timezone, line, now)
    raise RuntimeFailure(f"unknown instruction {op!r}")


def _window(const: list[Any], frame: Frame, host: Host, timezone: str, line: int, now: dt.datetime
            ) -> Suspended | None:
    """SPEC 2.12: inside the sending window the action goes ahead (its step records when it was
    due, if it waited); outside, the run waits until the window next opens and then runs this
    instruction again. The pending wait says which window, for which action, due since when."""
    start, end, days, action = const
    window = {"start": start, "end": end, "days": days}
    opening = next_opening(window, timezone, now)
    if opening is None:
        raise RuntimeFailure(f"the sending window {describe_window(window, timezone)} never opens")
    due, frame.delayed = frame.delayed, None
    if opening <= now:
        frame.due = due
        return None
    due = due or now
    shown = describe_window(window, timezone)
    host.on_step({"kind": "wait", "line": line, "wait": "window", "action": action, "window": shown,
                  "due_at": to_json(due), "until": to_json(opening)})
    frame.pending = {"kind": "window", "deadline": opening, "trigger": None, "where": -1, "correlation": [],
                     "action": action, "window": shown, "due": due}
    return Suspended(opening)


# ----------------------------------------------------------------------------- public entry points


def run(code: RuleCode, frame: Frame, host: Host, resume: Any = None, budget: int = MAX_STEPS) -> Result:
    """Run (or resume) a rule's body on `frame` until it is done, suspends or fails.

    `resume` is what a pending `wait for` resumes with: the event dict, or None on timeout.
    The frame is updated in place; after Suspended the engine snapshots `frame.encode()`.
    """
    if frame.pending is not None:
        kind = frame.pending.get("kind")
        if kind == "for":
            frame.stack.append(resume)
        elif kind == "window":  # WAIT_WINDOW runs again: the action keeps the time it was first due
            due = frame.pending.get("due")
            frame.delayed = due if isinstance(due, dt.datetime) else None
        frame.pending = None
    try:
        outcome = _interpret(code.body, frame, host, code.timezone, budget=budget)
    except RuntimeFailure as failure:
        result = _position_error(code.body, getattr(failure, "pc", frame.pc), str(failure))
        host.on_step({"kind": "error", "line": result.line, "column": result.column, "error": result.error})
        return result
    if isinstance(outcome, _Return):  # a body never returns a value; treat as done
        return Done()
    return outcome


def _evaluate(code: Code, event: dict[str, Any], timezone: str, locals_: dict[str, Any] | None = None,
              clause: dict[str, Any] | None = None, now: dt.datetime | None = None) -> Any:
    frame = Frame(event=event, locals=locals_ if locals_ is not None else {})
    outcome = _interpret(code, frame, None, timezone, clause=clause, now=now)
    if not isinstance(outcome, _Return):
        raise RuntimeFailure(f"code {code.name!r} did not return a value")
    return outcome.value


def evaluate(code: Code, event: dict[str, Any], timezone: str = "UTC", now: dt.datetime | None = None) -> Any:
    """The value of expression code (see codegen.compile_expression) against an event; raises
    RuntimeFailure (a WhenthenError) on a runtime error."""
    return _evaluate(code, event, timezone, now=now)


def eval_filter(code: RuleCode, event: dict[str, Any], now: dt.datetime | None = None) -> bool:
    """Does `event` pass the rule's `when … where`? A runtime error in the filter counts as false."""
    if code.filter is None:
        return True
    try:
        return _evaluate(code.filter, event, code.timezone, now=now) is True
    except RuntimeFailure:
        return False


def filter_error(code: RuleCode, event: dict[str, Any], now: dt.datetime | None = None) -> Failed | None:
    """Why the filter fails on `event` with a runtime error (None when it evaluates cleanly)."""
    if code.filter is None:
        return None
    try:
        _evaluate(code.filter, event, code.timezone, now=now)
    except RuntimeFailure as failure:
        return _position_error(code.filter, getattr(failure, "pc", 0), str(failure))
    return None


def wait_matches(code: RuleCode, frame: Frame, event: dict[str, Any], now: dt.datetime | None = None) -> bool:
    """Does `event` satisfy the pending `wait for … where` of a suspended frame? (The engine has
    already checked the trigger.) A runtime error counts as false."""
    pending = frame.pending
    if pending is None or pending.get("kind") != "for":
        return False
    where = pending.get("where", -1)
    if where is None or where < 0:
        return True
    try:
        return _evaluate(code.body.codes[where], frame.event, code.timezone, locals_=frame.locals,
                         clause=event, now=now) is True
    except (RuntimeFailure, IndexError):
        return False


def exit_matches(code: RuleCode, index: int, start_event: dict[str, Any], event: dict[str, Any],
                 now: dt.datetime | None = None) -> bool:
    """Does `event` (of the clause's trigger) satisfy exit clause `index` of a run started by
    `start_event`? A runtime error counts as false."""
    where = code.exits[index].where
    if where is None:
        return True
    try:
        return _evaluate(where, start_event, code.timezone, clause=event, now=now) is True
    except RuntimeFailure:
        return False


def exit_correlation(code: RuleCode, index: int, start_event: dict[str, Any],
                     now: dt.datetime | None = None) -> tuple[tuple[str, Any], ...]:
    """The (field of the exit event, value) equalities exit clause `index` requires of a run
    started by `start_event`, for the engine's index (empty when there are none, or on error)."""
    clause = code.exits[index]
    if clause.correlation is None:
        return ()
    try:
        found = _evaluate(clause.correlation, start_event, code.timezone, now=now)
    except RuntimeFailure:
        return ()
    return tuple(zip(clause.correlation_fields, found, strict=True))
