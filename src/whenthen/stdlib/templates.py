"""Email template files: plain text with `{to}`, `{subject}`, `{body}` placeholders, filled in one pass.

Deliberately not `str.format`: format strings can walk attributes (`{body.__class__}`) and index
(`{body[0]}`). Here a placeholder is a bare name from a fixed set, inserted values are never
scanned again (a body holding `{subject}` stays as written), and anything else is an error.
"""

from __future__ import annotations

import re
from pathlib import Path

PLACEHOLDERS = ("to", "subject", "body")
MAX_TEMPLATE_BYTES = 256_000
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


class TemplateError(Exception):
    """A template that cannot be used: not found, outside the folder, or a bad placeholder."""


def load_template(folder: Path | None, name: str) -> str:
    """The text of template `name` inside `folder`; never a file outside it."""
    if folder is None:
        raise TemplateError(f"template '{name}' given but no template folder is configured "
                            "(set WHENTHEN_TEMPLATES or [templates] folder)")
    root = folder.resolve()
    path = (root / name).resolve()
    if not name or Path(name).is_absolute() or not path.is_relative_to(root):
        raise TemplateError(f"template '{name}' is outside the template folder")
    try:
        if path.stat().st_size > MAX_TEMPLATE_BYTES:
            raise TemplateError(f"template '{name}' is larger than {MAX_TEMPLATE_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"template '{name}' not found in {folder}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"cannot read template '{name}': {exc}") from None


def fill(text: str, values: dict[str, str], name: str = "template") -> str:
    """`text` with each `{placeholder}` replaced by its value; `{{` and `}}` are literal braces."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        key = match.group(1)
        if key is None:
            raise TemplateError(f"{name}: a lone '{token}' (write '{token * 2}' for a literal brace)")
        if key not in values:
            raise TemplateError(f"{name}: unknown placeholder '{{{key}}}' (known: "
                                + ", ".join(f"{{{k}}}" for k in values) + ")")
        return values[key]

    return _TOKEN.sub(replace, text)


def render_email(template: str, to: str, subject: str, body: str, name: str = "template") -> tuple[str, str]:
    """(subject, body) from a template file's text. A first line `Subject: …` sets the subject
    (placeholders allowed); the rest, after one optional blank line, is the body."""
    values = {"to": to, "subject": subject, "body": body}
    first, _, rest = template.partition("\n")
    if first.lower().startswith("subject:"):
        subject = fill(first[len("subject:"):].strip(), values, name)
        template = rest[1:] if rest.startswith("\n") else rest
    return subject, fill(template, values, name)
