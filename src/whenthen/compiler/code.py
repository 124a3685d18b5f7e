"""Compiled code: `Code` objects, a rule's `RuleCode` and `ExitCode`, and their msgpack encoding.

A blob is `b"WTBC"`, a two-byte big-endian format version, then one msgpack document. Decoding
checks the header, the version and the shape of every `Code` (valid opcodes, indexes in range),
so a corrupt or foreign blob raises `BytecodeError` instead of crashing the VM later.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field
from typing import Any

from whenthen import values
from whenthen.compiler.opcodes import CONST_OPS, JUMPS, NAME_OPS, Opcode
from whenthen.diagnostics import WhenthenError

MAGIC = b"WTBC"
FORMAT_VERSION = 1
_VERSION = struct.Struct(">H")
_HEADER_SIZE = len(MAGIC) + _VERSION.size
USE_KINDS = ("start", "exit", "await", "emit")  # how a rule uses a trigger (RuleCode.uses)


class BytecodeError(WhenthenError):
    """A bytecode blob is corrupt, or was written by another format version."""


Instr = tuple[Opcode, int]


@dataclass(frozen=True)
class Code:
    """One straight piece of code: a filter, a body, or a clause's condition.

    `instrs` are (opcode, argument) pairs; `consts` the constant values (and call descriptors,
    see opcodes.py); `names` field/local names; `lines` (first pc, line, column) entries sorted by
    pc, giving each instruction's source position; `codes` the nested codes (`wait for … where`
    conditions) that WAIT_FOR refers to by index.
    """

    name: str
    instrs: tuple[Instr, ...]
    consts: tuple[Any, ...] = ()
    names: tuple[str, ...] = ()
    lines: tuple[tuple[int, int, int], ...] = ()
    codes: tuple[Code, ...] = ()
    _line_pcs: tuple[int, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_line_pcs", tuple(pc for pc, _, _ in self.lines))

    def position(self, pc: int) -> tuple[int, int]:
        """The source (line, column) of the instruction at `pc` ((0, 0) when unknown)."""
        i = bisect.bisect_right(self._line_pcs, pc) - 1
        if i < 0:
            return (0, 0)
        _, line, column = self.lines[i]
        return (line, column)

    # -- plain data
    def to_data(self) -> list[Any]:
        flat_instrs = [int(x) for instr in self.instrs for x in instr]
        flat_lines = [x for entry in self.lines for x in entry]
        return [
            self.name,
            flat_instrs,
            list(self.consts),
            list(self.names),
            flat_lines,
            [c.to_data() for c in self.codes],
        ]

    @classmethod
    def from_data(cls, data: Any) -> Code:
        if not isinstance(data, list) or len(data) != 6:
            raise BytecodeError("corrupt bytecode: a code object has the wrong shape")
        name, flat_instrs, consts, names, flat_lines, codes = data
        if not (
            isinstance(name, str)
            and all(isinstance(x, list) for x in (flat_instrs, consts, names, flat_lines, codes))
            and len(flat_instrs) % 2 == 0
            and len(flat_lines) % 3 == 0
            and all(isinstance(x, int) for x in flat_instrs + flat_lines)
            and all(isinstance(n, str) for n in names)
        ):
            raise BytecodeError(f"corrupt bytecode in code {name!r}")
        instrs = []
        for i in range(0, len(flat_instrs), 2):
            try:
                op = Opcode(flat_instrs[i])
            except ValueError:
                raise BytecodeError(f"corrupt bytecode: unknown opcode {flat_instrs[i]}") from None
            instrs.append((op, flat_instrs[i + 1]))
        code = cls(
            name,
            tuple(instrs),
            tuple(consts),
            tuple(names),
            tuple(tuple(flat_lines[i : i + 3]) for i in range(0, len(flat_lines), 3)),
            tuple(cls.from_data(c) for c in codes),
        )
        code.validate()
        return code

    def validate(self) -> None:
        """Raise BytecodeError unless every argument indexes something that exists."""
        n = len(self.instrs)
        for pc, (op, arg) in enumerate(self.instrs):
            ok = True
            if op in JUMPS:
                ok = 0 <= arg <= n
            elif op in NAME_OPS:
                ok = 0 <= arg < len(self.names)
            elif op in CONST_OPS:
                ok = 0 <= arg < len(self.consts) and _descriptor_ok(op, self.consts[arg], len(self.codes))
            elif op in (Opcode.BUILD_LIST, Opcode.BUILD_STRING):
                ok = arg >= 0
            if not ok:
                raise BytecodeError(f"corrupt bytecode: bad argument {arg} to {op.name} at {pc} in {self.name!r}")
        if not self.instrs or self.instrs[-1][0] not in (Opcode.RETURN, Opcode.HALT, Opcode.JUMP):
            raise BytecodeError(f"corrupt bytecode: code {self.name!r} does not end")


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _descriptor_ok(op: Opcode, const: Any, code_count: int) -> bool:
    """Is a call/emit/wait/branch constant shaped as opcodes.py describes?"""
    if op is Opcode.CALL_FUNC:
        return isinstance(const, list) and len(const) == 2 and isinstance(const[0], str) \
            and isinstance(const[1], int) and const[1] >= 0
    if op in (Opcode.CALL_ACTION, Opcode.EMIT):
        return isinstance(const, list) and len(const) == 2 and isinstance(const[0], str) and _str_list(const[1])
    if op is Opcode.WAIT_FOR:
        return (isinstance(const, list) and len(const) == 4 and isinstance(const[0], str)
                and isinstance(const[1], int) and -1 <= const[1] < code_count
                and isinstance(const[2], bool) and _str_list(const[3]))
    if op is Opcode.WAIT_WINDOW:
        return (isinstance(const, list) and len(const) == 4
                and all(isinstance(m, int) and not isinstance(m, bool) and 0 <= m < 1440 for m in const[:2])
                and const[0] != const[1] and isinstance(const[2], list) and len(const[2]) >= 1
                and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in const[2])
                and isinstance(const[3], str))
    if op is Opcode.BRANCH:
        return isinstance(const, str)
    if op is Opcode.SPLIT:
        return (isinstance(const, list) and len(const) == 4 and isinstance(const[0], str)
                and isinstance(const[1], int) and isinstance(const[2], list) and len(const[2]) >= 1
                and all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 100 for s in const[2])
                and sum(const[2]) == 100 and isinstance(const[3], bool))
    if op is Opcode.BUILD_OBJECT:
        return _str_list(const)
    return True


@dataclass(frozen=True)
class ExitCode:
    """An `exit when TRIGGER [where COND]` clause.

    `where` evaluates the condition (clause fields are the exit event's, aliases the start
    event's). `correlation_fields` and `correlation` give the (field of the exit event, value)
    equalities its condition requires, computed from the start event alone: `correlation` returns
    the list of values, in the order of the fields.
    """

    trigger: str
    where: Code | None = None
    correlation_fields: tuple[str, ...] = ()
    correlation: Code | None = None

    def to_data(self) -> list[Any]:
        return [
            self.trigger,
            self.where.to_data() if self.where else None,
            list(self.correlation_fields),
            self.correlation.to_data() if self.correlation else None,
        ]

    @classmethod
    def from_data(cls, data: Any) -> ExitCode:
        if not isinstance(data, list) or len(data) != 4 or not isinstance(data[0], str):
            raise BytecodeError("corrupt bytecode: an exit clause has the wrong shape")
        trigger, where, fields, correlation = data
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise BytecodeError("corrupt bytecode: bad exit correlation fields")
        return cls(
            trigger,
            Code.from_data(where) if where is not None else None,
            tuple(fields),
            Code.from_data(correlation) if correlation is not None else None,
        )


@dataclass(frozen=True)
class RuleCode:
    """Everything the runtime needs to run one version of a rule (no AST, no checker).

    `trigger` is the start trigger, or `schedule.fired` for a schedule, described by `schedule`
    as plain data: {"kind": "every", "seconds": n} | {"kind": "every_at", "day": "day"|"monday"…,
    "time": "HH:MM"} | {"kind": "cron", "expr": "…"} | {"kind": "at", "when": datetime (UTC)}.
    `equalities` are the (start-event field, constant) pairs the filter requires (for the
    engine's index across rules). Line numbers are the file's; `first_line` is the line where
    `source` starts. `uses` are the (trigger, how) pairs the code generator found: how is
    start, exit, await or emit (`whenthen uses`). Blobs written before `uses` was stored decode
    with `uses` empty; their `uses` rows in the database were written at publish time.
    """

    name: str
    trigger: str
    timezone: str
    source: str
    filter: Code | None
    body: Code
    exits: tuple[ExitCode, ...] = ()
    equalities: tuple[tuple[str, Any], ...] = ()
    schedule: dict[str, Any] | None = None
    file: str = ""
    first_line: int = 1
    uses: tuple[tuple[str, str], ...] = ()
    # `once per KEY… [within D]` (SPEC 2.11): code returning the list of key values, and D in
    # seconds (None: ever). Stored only when present, so other rules' blobs are unchanged.
    limit_keys: Code | None = None
    limit_within: int | None = None

    def to_data(self) -> dict[str, Any]:
        data = self._data()
        if self.limit_keys is not None:
            data["limit"] = [self.limit_keys.to_data(), self.limit_within]
        return data

    def _data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trigger": self.trigger,
            "timezone": self.timezone,
            "source": self.source,
            "filter": self.filter.to_data() if self.filter else None,
            "body": self.body.to_data(),
            "exits": [e.to_data() for e in self.exits],
            "equalities": [[f, v] for f, v in self.equalities],
            "schedule": self.schedule,
            "file": self.file,
            "first_line": self.first_line,
            "uses": [[trigger, how] for trigger, how in self.uses],
        }

    @classmethod
    def from_data(cls, data: Any) -> RuleCode:
        keys = ("name", "trigger", "timezone", "source", "filter", "body", "exits", "equalities",
                "schedule", "file", "first_line")
        if not isinstance(data, dict) or any(k not in data for k in keys):
            raise BytecodeError("corrupt bytecode: not a rule")
        if not all(isinstance(data[k], str) for k in ("name", "trigger", "timezone", "source", "file")):
            raise BytecodeError("corrupt bytecode: bad rule header")
        equalities = data["equalities"]
        if not isinstance(equalities, list) or not all(
            isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) for e in equalities
        ):
            raise BytecodeError("corrupt bytecode: bad filter equalities")
        if not isinstance(data["exits"], list) or not isinstance(data["first_line"], int):
            raise BytecodeError("corrupt bytecode: bad rule fields")
        if data["schedule"] is not None and not isinstance(data["schedule"], dict):
            raise BytecodeError("corrupt bytecode: bad schedule")
        uses = data.get("uses", [])  # absent from blobs of format 1 written before it was stored
        if not isinstance(uses, list) or not all(
            isinstance(u, list) and len(u) == 2 and isinstance(u[0], str) and u[1] in USE_KINDS for u in uses
        ):
            raise BytecodeError("corrupt bytecode: bad trigger uses")
        limit = data.get("limit")
        if limit is not None and not (isinstance(limit, list) and len(limit) == 2
                                      and (limit[1] is None or (isinstance(limit[1], int) and limit[1] > 0))):
            raise BytecodeError("corrupt bytecode: bad entry limit")
        return cls(
            name=data["name"],
            trigger=data["trigger"],
            timezone=data["timezone"],
            source=data["source"],
            filter=Code.from_data(data["filter"]) if data["filter"] is not None else None,
            body=Code.from_data(data["body"]),
            exits=tuple(ExitCode.from_data(e) for e in data["exits"]),
            equalities=tuple((f, v) for f, v in equalities),
            schedule=data["schedule"],
            file=data["file"],
            first_line=data["first_line"],
            uses=tuple((trigger, how) for trigger, how in uses),
            limit_keys=Code.from_data(limit[0]) if limit is not None else None,
            limit_within=limit[1] if limit is not None else None,
        )

    def encode(self) -> bytes:
        """The stored form: magic, format version, msgpack. Deterministic for equal rules."""
        return MAGIC + _VERSION.pack(FORMAT_VERSION) + values.pack(self.to_data())

    @classmethod
    def decode(cls, blob: bytes) -> RuleCode:
        """Read what `encode` wrote; BytecodeError on anything else."""
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise BytecodeError(f"bytecode must be bytes, not {type(blob).__name__}")
        blob = bytes(blob)
        if len(blob) < _HEADER_SIZE or not blob.startswith(MAGIC):
            raise BytecodeError("not whenthen bytecode (bad magic header)")
        (version,) = _VERSION.unpack_from(blob, len(MAGIC))
        if version != FORMAT_VERSION:
            raise BytecodeError(
                f"bytecode format version {version} is not supported (this whenthen reads version "
                f"{FORMAT_VERSION}); republish the rules"
            )
        try:
            return cls.from_data(values.unpack(blob[_HEADER_SIZE:]))
        except BytecodeError:
            raise
        except Exception as exc:  # msgpack and shape checks raise many kinds of errors on garbage
            raise BytecodeError(f"corrupt bytecode: {exc}") from None
