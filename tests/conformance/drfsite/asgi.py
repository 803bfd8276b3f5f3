"""ASGI entry point: ``uvicorn tests.conformance.drfsite.asgi:application``."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.conformance.drfsite.settings")

application = get_asgi_application()
