"""The calendar: its views, events, replies, rooms and feeds."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from portal.calendar.views import details, events, feeds, grid, replies, rooms

routes: list[BaseRoute] = [
    Route("/calendar", grid.calendar, name="calendar.home"),
    Route("/calendar/events/new", events.new, name="calendar.new"),
    Route("/calendar/events", events.create, methods=["POST"], name="calendar.create"),
    Route("/calendar/availability", events.availability, name="calendar.availability"),
    Route("/calendar/events/{event_id}", details.detail, name="calendar.event"),
    Route("/calendar/events/{event_id}/edit", events.edit, name="calendar.edit"),
    Route(
        "/calendar/events/{event_id}/edit",
        events.update,
        methods=["POST"],
        name="calendar.update",
    ),
    Route(
        "/calendar/events/{event_id}/cancel",
        events.cancel,
        methods=["POST"],
        name="calendar.cancel",
    ),
    Route(
        "/calendar/events/{event_id}/reply", replies.reply, methods=["POST"], name="calendar.reply"
    ),
    Route("/calendar/reply/{token}", replies.link, name="calendar.reply_link"),
    Route(
        "/calendar/reply/{token}",
        replies.answer_link,
        methods=["POST"],
        name="calendar.reply_link_answer",
    ),
    Route("/calendar/events/{event_id}/start", rooms.start, name="calendar.start"),
    Route("/calendar/join/{token}", rooms.join, name="calendar.join"),
    Route("/calendar/feed", feeds.settings_page, name="calendar.feed_settings"),
    Route("/calendar/feed/reset", feeds.reset, methods=["POST"], name="calendar.feed_reset"),
    Route("/calendar/feed/{token}.ics", feeds.feed, name="calendar.feed"),
]
