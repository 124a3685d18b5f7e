"""System triggers fired by the engine (`run.failed`, `action.failed`) and the schedule event type."""

from __future__ import annotations

from whenthen.calendar import SCHEDULE_TRIGGER
from whenthen.compiler.decls import TriggerSchema
from whenthen.compiler.types import DATETIME, STR, object_of

TRIGGERS: dict[str, TriggerSchema] = {
    schema.name: schema
    for schema in [
        TriggerSchema("run.failed", object_of({"rule": STR, "run_id": STR, "error": STR}), origin="system"),
        TriggerSchema(
            "action.failed",
            object_of({"rule": STR, "run_id": STR, "action": STR, "error": STR}),
            origin="system",
        ),
        # The event of every schedule rule; rules cannot name it, only `when every/cron/at`.
        TriggerSchema(SCHEDULE_TRIGGER, object_of({"at": DATETIME}), origin="schedule"),
    ]
}
