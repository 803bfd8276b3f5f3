"""API errors answered as DRF-style JSON (`{"detail": ...}`) and the JSON response helper."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

NOT_FOUND = "Not found."


class ApiError(Exception):
    """Raised anywhere in a handler; becomes `status` with `{"detail": detail, **extra}`."""

    def __init__(
        self,
        status: int,
        detail: Any,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.body: Any = {"detail": detail, **extra}
        self.headers = headers or {}

    @classmethod
    def raw(cls, status: int, body: Any) -> ApiError:
        """An error whose body is not wrapped in `detail` (DRF serializer field errors)."""
        error = cls(status, None)
        error.body = body
        return error

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def not_found() -> ApiError:
    return ApiError(404, NOT_FOUND)


def json_response(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)
