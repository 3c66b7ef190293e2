"""The ASGI app for production servers: `uvicorn portal.asgi:app` (see the Procfile)."""

from portal.app import create_app
from portal.settings import Settings

app = create_app(Settings.from_env())
