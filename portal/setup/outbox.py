"""Company Setup > Outbox: every message the portal sent or means to send, for admins."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from portal import jobs
from portal.mail import services
from portal.mail.jobs import SEND_OUTBOX
from portal.mail.models import FAILED, HELD, OutboxMessage
from portal.mail.outbox import retry_now
from portal.pagination import page_number
from portal.setup.menu import render_setup
from portal.web import admin_required, db_session, flash, int_param, redirect, settings_of

# The email's own HTML, shown inside a sandboxed frame: no scripts, no requests, no navigation.
BODY_POLICY = (
    "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
)


async def _message_or_404(request: Request) -> OutboxMessage:
    message = await services.message(db_session(request), int_param(request, "message_id"))
    if message is None:
        raise HTTPException(404, "No such message in your company's outbox.")
    return message


@admin_required
async def outbox(request: Request) -> Response:
    status = request.query_params.get("status", "")
    page = await services.messages(
        db_session(request), status=status, page=page_number(request.query_params.get("page"))
    )
    context = {
        "page": page,
        "status": status,
        "statuses": services.STATUSES,
        "smtp": settings_of(request).smtp,
        "jobs": await jobs.health(request.app.state, SEND_OUTBOX),
    }
    return render_setup(request, "setup/outbox.html", context, block="message_list")


@admin_required
async def outbox_message(request: Request) -> Response:
    message = await _message_or_404(request)
    attachments = await services.attachments(db_session(request), message)
    context = {
        "message": message,
        "bodies": services.readable_bodies(message),
        "attachments": attachments,
        "smtp": settings_of(request).smtp,
    }
    return render_setup(request, "setup/outbox_message.html", context)


@admin_required
async def outbox_message_html(request: Request) -> Response:
    message = await _message_or_404(request)
    return HTMLResponse(
        services.readable_bodies(message).html,
        headers={"content-security-policy": BODY_POLICY, "x-frame-options": "SAMEORIGIN"},
    )


@admin_required
async def outbox_retry(request: Request) -> Response:
    message = await _message_or_404(request)
    if not settings_of(request).smtp.configured:
        flash(
            request,
            "No mail server is configured, so the message stays held. Set PORTAL_SMTP_HOST first.",
            "error",
        )
    elif message.status not in (FAILED, HELD):
        flash(request, "Only failed or held messages can be retried.", "error")
    else:
        await retry_now(db_session(request), message)
        flash(request, f"The message to {message.to_address} is queued again.", "success")
    return redirect(str(request.url_for("setup.outbox_message", message_id=message.id)))
