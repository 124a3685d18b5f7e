"""Code generation and the bytecode format: shapes, encode/decode round trips, corrupt blobs."""

from __future__ import annotations

import datetime as dt
import functools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _paths import conformance_files
from _vm_support import compile_text, only_rule
from whenthen.compiler.checker import check_program
from whenthen.compiler.code import FORMAT_VERSION, MAGIC, BytecodeError, Code, RuleCode
from whenthen.compiler.codegen import compile_rules
from whenthen.compiler.opcodes import Opcode
from whenthen.compiler.sources import load_sources
from whenthen.diagnostics import CompileError
from whenthen.source import Source
from whenthen.values import pack, unpack

UTC = dt.UTC

PROGRAM = """
timezone "Europe/Paris"
trigger guest.added { id: str, email: str, category: 'VIP' | 'Press', company: str? }
trigger email.opened { guest_id: str, campaign: str }
rule "All" when guest.added where category = 'VIP'
exit when email.opened where guest_id = guest.id
then
  let r = wait for email.opened where guest_id = guest.id and campaign = 'x' within 1d
  wait until 2026-12-01T09:00
  switch company
  case 'A', 'B' then log(message: "a {company}")
  else emit email.opened(guest_id: id, campaign: 'c')
  end
  stop
end
rule "Tick" when every day at 09:00 then
  log(message: "tick {event.at}")
end
"""


def test_compile_rules_returns_every_rule_by_name() -> None:
    rules = compile_text(PROGRAM)
    assert list(rules) == ["All", "Tick"]
    tick = rules["Tick"]
    assert tick.trigger == "schedule.fired"
    assert tick.schedule == {"kind": "every_at", "day": "day", "time": "09:00"}
    assert tick.filter is None and tick.timezone == "Europe/Paris"


def test_naive_datetime_literals_are_in_the_file_time_zone() -> None:
    body = compile_text(PROGRAM)["All"].body
    assert dt.datetime(2026, 12, 1, 8, 0, tzinfo=UTC) in body.consts


def test_wait_for_registers_correlation_and_a_where_code() -> None:
    body = compile_text(PROGRAM)["All"].body
    (wait_for,) = [arg for op, arg in body.instrs if op is Opcode.WAIT_FOR]
    assert body.consts[wait_for] == ["email.opened", 0, True, ["guest_id", "campaign"]]
    assert body.codes[0].instrs[-1] == (Opcode.RETURN, 0)


def test_exit_clause_has_where_and_correlation_code() -> None:
    (exit_code,) = compile_text(PROGRAM)["All"].exits
    assert exit_code.trigger == "email.opened"
    assert exit_code.correlation_fields == ("guest_id",)
    assert exit_code.where is not None and exit_code.correlation is not None


def test_every_instruction_has_a_source_position_in_the_body() -> None:
    body = compile_text(PROGRAM)["All"].body
    for pc in range(len(body.instrs)):
        line, column = body.position(pc)
        assert line >= 6 and column >= 1


def test_a_program_with_errors_raises_compile_error() -> None:
    program = check_program([Source("bad.rules", "rule \"x\" when nope.never then\nend\n")])
    with pytest.raises(CompileError):
        compile_rules(program)


# ----------------------------------------------------------------------------- the blob format


def all_rule_codes() -> list[RuleCode]:
    codes = list(compile_text(PROGRAM).values())
    ours = len(codes)
    for case in sorted({p.parent for p in conformance_files("**/*.rules")}):
        program = check_program(load_sources([case]))
        if program.ok and program.rules:
            codes.extend(compile_rules(program).values())
    assert len(codes) > ours, "no conformance rule compiled"
    return codes


def test_encode_decode_round_trips_every_conformance_rule() -> None:
    codes = all_rule_codes()
    assert len(codes) >= 2
    for code in codes:
        blob = code.encode()
        assert blob.startswith(MAGIC)
        again = RuleCode.decode(blob)
        assert again == code
        assert again.encode() == blob  # deterministic: publish compares compiled forms


def test_compiling_twice_gives_the_same_bytes() -> None:
    assert [c.encode() for c in compile_text(PROGRAM).values()] == [
        c.encode() for c in compile_text(PROGRAM).values()
    ]


@pytest.mark.parametrize(
    "blob",
    [b"", b"WTB", b"XXXX\x00\x01", MAGIC + b"\x00\x01", MAGIC + b"\x00\x01\xc1", MAGIC + b"\x00\x01" + pack([1, 2]),
     MAGIC + b"\x00\x01" + pack({"name": 1})],
)
def test_corrupt_blobs_raise_bytecode_error(blob: bytes) -> None:
    with pytest.raises(BytecodeError):
        RuleCode.decode(blob)


def test_another_format_version_raises_a_clear_error() -> None:
    blob = only_rule(PROGRAM.split('rule "Tick"')[0]).encode()
    future = MAGIC + struct.pack(">H", FORMAT_VERSION + 1) + blob[len(MAGIC) + 2:]
    with pytest.raises(BytecodeError, match="version"):
        RuleCode.decode(future)


def test_bad_opcodes_and_indexes_are_rejected_at_decode() -> None:
    code = compile_text(PROGRAM)["All"]
    data = code.to_data()
    data["body"][1][0] = 250  # not an opcode
    with pytest.raises(BytecodeError, match="opcode"):
        RuleCode.from_data(data)
    data = code.to_data()
    data["body"][1][1] = 9999  # a CONST index out of range
    with pytest.raises(BytecodeError, match="bad argument"):
        RuleCode.from_data(data)


@functools.cache
def program_blob() -> bytes:
    return compile_text(PROGRAM)["All"].encode()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 400))
def test_random_damage_never_crashes_decode(noise: bytes, at: int) -> None:
    blob = program_blob()
    damaged = blob[:at] + noise + blob[at + len(noise):]
    try:
        RuleCode.decode(damaged)
    except BytecodeError:
        pass


values_strategy = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.text(max_size=5),
        st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
                     timezones=st.just(UTC)),
        st.dates(), st.timedeltas(min_value=dt.timedelta(days=-10**6), max_value=dt.timedelta(days=10**6)),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(values_strategy)
def test_runtime_values_round_trip_through_msgpack(value) -> None:
    assert unpack(pack(value)) == value


def test_code_position_lookup() -> None:
    code = Code("x", ((Opcode.CONST, 0), (Opcode.POP, 0), (Opcode.HALT, 0)), (1,), (), ((0, 3, 5), (2, 4, 1)))
    assert [code.position(pc) for pc in range(3)] == [(3, 5), (3, 5), (4, 1)]


def test_malformed_call_descriptors_are_rejected_at_decode() -> None:
    code = compile_text(PROGRAM)["All"]
    data = code.to_data()
    consts = data["body"][2]
    (index,) = [i for i, c in enumerate(consts) if isinstance(c, list) and c and c[0] == "log"]
    consts[index] = ["log", "message"]  # names must be a list
    with pytest.raises(BytecodeError, match="bad argument"):
        RuleCode.from_data(data)


# ----------------------------------------------------------------------------- trigger uses


USES_RULE = """
trigger order.placed { customer_id: str }
trigger message.received { client_id: str }
trigger ping.sent { n: int }
rule "U" when order.placed exit when ping.sent then
  wait for message.received where client_id = order.customer_id
  emit ping.sent(n: 1)
  emit ping.sent(n: 2)
end
"""


def test_the_code_generator_records_how_a_rule_uses_triggers() -> None:
    code = only_rule(USES_RULE)
    assert code.uses == (("order.placed", "start"), ("ping.sent", "exit"),
                         ("message.received", "await"), ("ping.sent", "emit"))
    assert RuleCode.decode(code.encode()).uses == code.uses


def test_a_blob_written_before_uses_were_stored_still_decodes() -> None:
    # Databases of format 1 hold blobs without the "uses" key; their uses rows were stored then.
    code = only_rule(USES_RULE)
    data = code.to_data()
    del data["uses"]
    old = RuleCode.decode(MAGIC + struct.pack(">H", FORMAT_VERSION) + pack(data))
    assert old.uses == ()
    assert old.body == code.body and old.exits == code.exits


@pytest.mark.parametrize("uses", [[["x", "sideways"]], [["x"]], "x", [[1, "emit"]]])
def test_malformed_uses_are_corrupt_bytecode(uses) -> None:
    data = only_rule(USES_RULE).to_data()
    data["uses"] = uses
    with pytest.raises(BytecodeError, match="bad trigger uses"):
        RuleCode.decode(MAGIC + struct.pack(">H", FORMAT_VERSION) + pack(data))
