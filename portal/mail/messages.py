"""Emails rendered from templates/email/<name>/{subject.txt, body.txt, body.html}."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from email import encoders
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
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
) -> Message:
    """The message as sent: text and HTML (and a calendar) as alternatives, then attachments.

    With a calendar the shape is the one Gmail and Outlook show with Accept/Decline:
    multipart/mixed > multipart/alternative (text, html, text/calendar; method=...) + invite.ics.
    Built with the email.mime classes: EmailMessage's content manager costs ~2.5 ms a message,
    which would make building, not sending, the limit of a large fan-out.
    """
    body = MIMEMultipart("alternative")
    body.attach(MIMEText(message.body_text, "plain", "utf-8"))
    body.attach(MIMEText(message.body_html, "html", "utf-8"))
    files: list[Message] = []
    if message.calendar_ics:
        calendar = MIMEText(message.calendar_ics, "calendar", "utf-8")
        calendar.set_param("method", message.calendar_method or "REQUEST")
        body.attach(calendar)
        files.append(_file(message.calendar_ics.encode(), "application/ics", "invite.ics"))
    files += [_file(a.data, a.content_type, a.filename) for a in attachments]
    mime: Message = body
    if files:
        mime = MIMEMultipart("mixed")
        mime.attach(body)
        for part in files:
            mime.attach(part)
    mime["Message-ID"] = message.message_id
    mime["Date"] = formatdate(message.created_at.timestamp())
    mime["From"] = mail_from
    mime["To"] = formataddr((header_safe(message.to_name), message.to_address), "utf-8")
    if message.reply_to:
        mime["Reply-To"] = message.reply_to
    subject = header_safe(message.subject)
    mime["Subject"] = subject if subject.isascii() else Header(subject, "utf-8").encode()
    return mime


def _file(data: bytes, content_type: str, filename: str) -> Message:
    maintype, _, subtype = content_type.partition("/")
    part = MIMEBase(maintype or "application", subtype or "octet-stream")
    part.set_payload(data)
    encoders.encode_base64(part)
    part.add_header("Content-Disposition", "attachment", filename=header_safe(filename))
    return part
