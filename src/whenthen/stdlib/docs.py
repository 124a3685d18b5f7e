"""docs/stdlib.md, generated from the stdlib declarations: `python -m whenthen.stdlib.docs > docs/stdlib.md`."""

from __future__ import annotations

from whenthen import values
from whenthen.compiler.decls import FILE_LOCALE, ActionSig, FunctionSig, ParamSig

HEADER = """\
# The standard library

Generated from the declarations in `src/whenthen/stdlib/` by `python -m whenthen.stdlib.docs >
docs/stdlib.md`; a test fails when this file and the declarations differ. How the actions are
configured (SMTP, webhook secret, templates) and how host actions are added: docs/actions.md.
"""


def _param(p: ParamSig, shown: str | None = None) -> str:
    text = f"{p.name}: {shown or p.type}"
    if p.default is FILE_LOCALE:
        return text + " = the file's locale"
    if p.has_default:
        default = values.to_json(p.default)
        text += " = " + ("null" if default is None else f"'{default}'" if isinstance(default, str) else str(default))
    return text


def function_signature(sig: FunctionSig) -> str:
    params = "a, b, …" if sig.variadic else ", ".join(_param(p, sig.shown.get(p.name)) for p in sig.params)
    result = sig.shown.get("return")
    if result is None and not sig.variadic:
        try:
            result = str(sig.result([p.type for p in sig.params]))
        except Exception:  # a result computed from argument types it cannot take alone
            result = None
    return f"{sig.name}({params})" + (f" -> {result}" if result else "")


def action_signature(sig: ActionSig) -> str:
    text = f"{sig.name}({', '.join(_param(p) for p in sig.params)})"
    return text + (f" -> {sig.result}" if sig.result is not None else "")


def render() -> str:
    """The whole of docs/stdlib.md."""
    from whenthen.stdlib.actions import ACTIONS
    from whenthen.stdlib.functions import FUNCTIONS
    from whenthen.stdlib.triggers import TRIGGERS

    out = [HEADER, "## Functions\n",
           "Pure; given a null argument they return null, except `len`, `coalesce` and the `end` of `slice`. "
           "A function given a locale or pattern literal that Babel rejects is E103 at check time.\n"]
    for sig in FUNCTIONS.values():
        out.append(f"### `{function_signature(sig)}`\n\n{_sentence(sig.doc)}\n")
    out.append("## Actions\n\nStatements, or `let` values; always declared.\n")
    for action in ACTIONS.values():
        out.append(f"### `{action_signature(action)}`\n\n{_sentence(action.doc)}\n")
    out.append("## System triggers\n\nFired by the engine; rules may start on them.\n")
    for trigger in TRIGGERS.values():
        if trigger.origin == "system":
            out.append(f"### `{trigger.name} {trigger.type}`\n")
    return "\n".join(out)


def _sentence(doc: str) -> str:
    doc = doc.strip()
    return (doc[0].upper() + doc[1:] + ("" if doc.endswith(".") else ".")) if doc else ""


if __name__ == "__main__":
    print(render(), end="")
