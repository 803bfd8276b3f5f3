"""Minimal Django settings serving the unmodified drf-chunked-upload 0.6.0 views.

Everything that varies per test run comes from environment variables set by
``tests.harness.drf`` (see there):

- ``DRFSITE_DB``             SQLite database file (required)
- ``DRFSITE_MEDIA_ROOT``     where uploads are stored (required)
- ``DRFSITE_TOKENS``         ``"tok1:alice,tok2:bob"`` token -> username map
- ``DRFSITE_EXPIRE_SECONDS`` upload lifetime from creation, seconds (default 1 day);
                             0 or negative makes every upload expired at once
- ``DRFSITE_MAX_BYTES``      optional upper bound on an upload's total size
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path


def _required_path(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} must be set (see tests/harness/drf.py)")
    return Path(value)


MEDIA_ROOT = str(_required_path("DRFSITE_MEDIA_ROOT"))
_DB = _required_path("DRFSITE_DB")

SECRET_KEY = "drfsite-test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "drf_chunked_upload",
]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "tests.conformance.drfsite.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(_DB),
        "OPTIONS": {"timeout": 20},
    }
}

# Bodies of 50 MiB chunks (and more) must be accepted. File parts above
# FILE_UPLOAD_MAX_MEMORY_SIZE are streamed by Django to temp files.
DATA_UPLOAD_MAX_MEMORY_SIZE = None
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_TEMP_DIR = os.environ.get("DRFSITE_TMP_DIR") or None

REST_FRAMEWORK = {
    # Only our token class: its authenticate_header() makes DRF answer 401
    # (not 403, as it would with SessionAuthentication first in the list).
    "DEFAULT_AUTHENTICATION_CLASSES": ["tests.conformance.drfsite.auth.EnvTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}

DRF_CHUNKED_UPLOAD_ABSTRACT_MODEL = False
DRF_CHUNKED_UPLOAD_EXPIRATION_DELTA = timedelta(
    seconds=float(os.environ.get("DRFSITE_EXPIRE_SECONDS") or 86400)
)
_max_bytes = os.environ.get("DRFSITE_MAX_BYTES")
DRF_CHUNKED_UPLOAD_MAX_BYTES = int(_max_bytes) if _max_bytes else None

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
}
