"""Emails rendered from templates/email/<name>/{subject.txt, body.txt, body.html}."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formataddr, formatdate
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from portal.mail.models import OutboxAttachment, OutboxMessage

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


def build_mime(
    message: OutboxMessage, attachments: list[OutboxAttachment], mail_from: str
) -> EmailMessage:
    """The message as sent: text and HTML (and a calendar) as alternatives, then attachments.

    With a calendar the shape is the one Gmail and Outlook show with Accept/Decline:
    multipart/mixed > multipart/alternative (text, html, text/calendar; method=...) + invite.ics.
    """
    mime = EmailMessage(policy=SMTP_POLICY)
    mime["Message-ID"] = message.message_id
    mime["Date"] = formatdate(message.created_at.timestamp(), localtime=False)
    mime["From"] = mail_from
    mime["To"] = formataddr((header_safe(message.to_name), message.to_address))
    if message.reply_to:
        mime["Reply-To"] = message.reply_to
    mime["Subject"] = header_safe(message.subject)
    mime.set_content(message.body_text)
    mime.add_alternative(message.body_html, subtype="html")
    if message.calendar_ics:
        method = message.calendar_method or "REQUEST"
        mime.add_alternative(message.calendar_ics, subtype="calendar", params={"method": method})
        mime.make_mixed()
        mime.add_attachment(
            message.calendar_ics.encode(),
            maintype="application",
            subtype="ics",
            filename="invite.ics",
        )
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        mime.add_attachment(
            attachment.data,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
        )
    return mime
