"""The ASGI app for production servers: `uvicorn portal.asgi:app` (see the Procfile)."""

from portal.app import create_app
from portal.logs import configure_logging
from portal.settings import Settings

settings = Settings.from_env()
# Each server process imports this module, whichever server runs it: log as the worker does.
configure_logging(settings.log_level, settings.log_format)
app = create_app(settings, server=True)
