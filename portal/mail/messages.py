"""Emails rendered from templates/email/<name>/{subject.txt, body.txt, body.html}."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

# CR/LF/NUL would start a new header line; "=?" starts an encoded word (CVE-2024-6923).
_HEADER_UNSAFE = re.compile(r"[\r\n\x00]|=\?")


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str


def header_safe(value: str) -> str:
    """User text made safe to put in a mail header: one line, no encoded words."""
    return " ".join(_HEADER_UNSAFE.sub(" ", value).split())


@functools.cache
def _environment(templates_dir: Path) -> Environment:
    return Environment(
        loader=FileSystemLoader(templates_dir / "email"),
        # Only the HTML body is HTML; the subject and text body must not get &amp; entities.
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def render_email(templates_dir: Path, name: str, context: dict[str, Any]) -> EmailContent:
    env = _environment(templates_dir)
    return EmailContent(
        subject=header_safe(env.get_template(f"{name}/subject.txt").render(context)),
        text=env.get_template(f"{name}/body.txt").render(context),
        html=env.get_template(f"{name}/body.html").render(context),
    )
