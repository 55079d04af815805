"""The one place where failures become HTTP responses, in Astarte's error shapes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from astraea.api.responses import JsonResponse


class ApiError(Exception):
    """A failure with a status and a `detail`; extra fields are added to the errors object."""

    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra


class ValidationFailed(Exception):
    """A 422 carrying a changeset-shaped `errors` object (field → messages)."""

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__("validation failed")
        self.errors = errors


def bad_request() -> ApiError:
    return ApiError(400, "Bad request")


def error_response(status: int, errors: dict[str, Any]) -> JsonResponse:
    return JsonResponse({"errors": errors}, status_code=status)


# Astarte's services disagree on the wording of an unknown route; keep each one's.
_NOT_FOUND_DETAIL = {"housekeeping": "Page not found", "pairing": "Page not found"}


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(_: Request, exc: Exception) -> JsonResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, {"detail": exc.detail, **exc.extra})

    async def on_validation(_: Request, exc: Exception) -> JsonResponse:
        assert isinstance(exc, ValidationFailed)
        return error_response(422, exc.errors)

    async def on_http(request: Request, exc: Exception) -> JsonResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            api = request.url.path.strip("/").split("/", 1)[0]
            return error_response(404, {"detail": _NOT_FOUND_DETAIL.get(api, "Not found")})
        if exc.status_code == 405:
            return error_response(405, {"detail": "Method not allowed"})
        return error_response(exc.status_code, {"detail": str(exc.detail)})

    async def on_request_validation(_: Request, __: Exception) -> JsonResponse:
        return error_response(400, {"detail": "Bad request"})

    async def on_unexpected(_: Request, __: Exception) -> JsonResponse:
        return error_response(500, {"detail": "Internal server error"})

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(ValidationFailed, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_request_validation)
    app.add_exception_handler(Exception, on_unexpected)
