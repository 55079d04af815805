"""Reading `{"data": ...}` request envelopes with a size cap.

Astarte answers 400 `Bad request` for malformed JSON and for a body without `data`; an
oversized body is refused before it is parsed, so it can never exhaust memory.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from astraea.api.errors import ApiError, bad_request

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


async def read_json(request: Request) -> Any:
    limit: int = getattr(request.app.state, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        raise bad_request() from None


async def read_data(request: Request) -> Any:
    """The value under `data` in a JSON object body (any JSON type)."""
    body = await read_json(request)
    if not isinstance(body, dict) or "data" not in body:
        raise bad_request()
    return body["data"]


async def read_data_object(request: Request) -> dict[str, Any]:
    data = await read_data(request)
    if not isinstance(data, dict):
        raise bad_request()
    return data


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"Request body is larger than {limit} bytes")
