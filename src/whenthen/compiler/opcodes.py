"""The instruction set of the whenthen VM: one IntEnum, each opcode with its stack picture.

Each instruction is a pair (opcode, argument); opcodes that take no argument carry 0. Stack
pictures read `before → after`, top of stack on the right, as in starlark-go and CPython's
`dis` docs. `consts[k]`, `names[n]` and `codes[c]` index the tables of the `Code` object.
Jump targets are absolute instruction indexes.
"""

from __future__ import annotations

from enum import IntEnum


class Opcode(IntEnum):
    # -- stack and values
    NOP = 0  # — → —
    POP = 1  # x → —
    DUP = 2  # x → x x
    CONST = 3  # — → consts[k]
    LOAD_FIELD = 4  # — → start_event[names[n]]  (null when absent)
    LOAD_EVENT = 5  # — → start_event
    LOAD_LOCAL = 6  # — → locals[names[n]]
    STORE_LOCAL = 7  # x → —  (locals[names[n]] = x)
    LOAD_CLAUSE = 8  # — → clause_event[names[n]]  (the event of a `wait for`/`exit when` clause)
    ATTR = 9  # obj → obj[names[n]]  (null on null, or when absent)
    BUILD_LIST = 10  # x1 … xn → [x1, …, xn]
    FORMAT = 11  # x → text of x  (SPEC 2.6 template rendering, in the rule's time zone)
    BUILD_STRING = 12  # s1 … sn → s1 + … + sn
    BUILD_OBJECT = 13  # v1 … vn → {k1: v1, …, kn: vn}  (consts[k] = [k1, …, kn])

    # -- unary operators (null-aware as in SPEC 2.4)
    NOT = 20  # x → not x  (null counts as false)
    NEG = 21  # x → -x  (null → null)
    IS_NULL = 22  # x → x is null
    IS_EMPTY = 23  # x → x is null, '' or []
    BOOL = 24  # x → x is true  (a condition's value: null and non-booleans count as false)

    # -- binary operators: a b → a OP b
    ADD = 30
    SUB = 31
    MUL = 32
    DIV = 33
    MOD = 34
    EQ = 35  # null is a value: null = null is true
    NE = 36
    LT = 37  # ordering with a null operand is false
    LE = 38
    GT = 39
    GE = 40
    CONTAINS = 41  # substring or list membership
    STARTS_WITH = 42
    ENDS_WITH = 43
    IN = 44  # a in b: b is a list
    NOT_IN = 45  # false with a null operand, like IN
    MATCHES = 46  # re.search(b, a)

    # -- control flow
    JUMP = 50  # — → —  (pc = target)
    JUMP_IF_FALSE = 51  # x → —  (jump unless x is true)
    JUMP_IF_TRUE = 52  # x → —  (jump if x is true)
    JUMP_IF_FALSE_OR_POP = 53  # x → false (jump) | —  (`and`: jump with false unless x is true)
    JUMP_IF_TRUE_OR_POP = 54  # x → true (jump) | —  (`or`: jump with true if x is true)

    # -- loops (SPEC 2.5): the loop's state stays on the stack, so a frame snapshot keeps it
    LOOP_COUNT = 55  # x → n 0  (a repeat count: null or ≤ 0 → 0; above 10,000 fails the run)
    LOOP_LIST = 56  # x → list 0  (a for's items: null → []; over 10,000 items fails the run)
    FOR_RANGE = 57  # n i → n i+1 | —  (while i < n go on; else pop both and jump to target)
    FOR_ITER = 58  # list i → list i+1 list[i] | —  (while i < len go on; else pop both, jump)

    # -- calls and effects
    CALL_FUNC = 60  # a1 … an → f(a1, …, an)  (consts[k] = [function, n]; args in declared order)
    CALL_ACTION = 61  # v1 … vn → result  (consts[k] = [action, [arg names]]; the frame's step += 1)
    EMIT = 62  # v1 … vn → —  (consts[k] = [trigger, [field names]]; depth + 1, at most 32)
    BRANCH = 63  # — → —  (trace which branch was taken: consts[k] = label)
    SPLIT = 64  # [value] → case  (SPEC 2.13: consts[k] = [rule, split number, [shares], has_by];
    #   the 1-based case a stable hash of rule and value, or of rule and run id, picks; traced)

    # -- suspension
    WAIT = 70  # duration → —  (suspend until now + duration)
    WAIT_UNTIL = 71  # datetime → —  (suspend until it, unless it is past)
    WAIT_FOR = 72  # [within] c1 … cm → event | null
    #   consts[k] = [trigger, where code index or -1, has_within, [correlation fields]];
    #   c1 … cm are the correlation values known at wait time; on resume the awaited event (or
    #   null on timeout) is pushed.
    WAIT_WINDOW = 75  # — → —  (SPEC 2.12, before an action's arguments: outside the sending window
    #   the run waits until it opens, then runs this instruction again; consts[k] = [start minute,
    #   end minute, [weekdays it opens], action])

    # -- ends
    RETURN = 80  # x → —  (a filter or clause code returns x)
    HALT = 81  # — → —  (the run is done: end of body or `stop`)


# Opcodes whose argument is a jump target (the disassembler marks them).
JUMPS = frozenset(
    {
        Opcode.JUMP,
        Opcode.JUMP_IF_FALSE,
        Opcode.JUMP_IF_TRUE,
        Opcode.JUMP_IF_FALSE_OR_POP,
        Opcode.JUMP_IF_TRUE_OR_POP,
        Opcode.FOR_RANGE,
        Opcode.FOR_ITER,
    }
)

# The most iterations one loop may run (SPEC 2.5): more fails the run with "loop limit exceeded".
LOOP_LIMIT = 10_000

# Opcodes whose argument indexes `names`.
NAME_OPS = frozenset(
    {Opcode.LOAD_FIELD, Opcode.LOAD_LOCAL, Opcode.STORE_LOCAL, Opcode.LOAD_CLAUSE, Opcode.ATTR}
)

# Opcodes whose argument indexes `consts`.
CONST_OPS = frozenset(
    {
        Opcode.CONST,
        Opcode.CALL_FUNC,
        Opcode.CALL_ACTION,
        Opcode.EMIT,
        Opcode.BRANCH,
        Opcode.SPLIT,
        Opcode.WAIT_FOR,
        Opcode.WAIT_WINDOW,
        Opcode.BUILD_OBJECT,
    }
)

# Opcodes whose argument is a count.
COUNT_OPS = frozenset({Opcode.BUILD_LIST, Opcode.BUILD_STRING})

# Opcodes that take an argument at all.
HAS_ARG = JUMPS | NAME_OPS | CONST_OPS | COUNT_OPS

# Binary operator opcodes, keyed by the operator as stored in `ast.Binary.op`.
BINARY_OPS: dict[str, Opcode] = {
    "+": Opcode.ADD,
    "-": Opcode.SUB,
    "*": Opcode.MUL,
    "/": Opcode.DIV,
    "%": Opcode.MOD,
    "=": Opcode.EQ,
    "!=": Opcode.NE,
    "<": Opcode.LT,
    "<=": Opcode.LE,
    ">": Opcode.GT,
    ">=": Opcode.GE,
    "contains": Opcode.CONTAINS,
    "starts with": Opcode.STARTS_WITH,
    "ends with": Opcode.ENDS_WITH,
    "in": Opcode.IN,
    "not in": Opcode.NOT_IN,
    "matches": Opcode.MATCHES,
}
