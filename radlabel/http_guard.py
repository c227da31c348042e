"""Guards shared by radlabel's private Flask services (ML backend, hooks server): HTTP basic auth and a
request body read through a hard size cap, with or without a Content-Length (chunked uploads)."""

from __future__ import annotations

import hmac
import json

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge

_READ_CHUNK = 1 << 20


def limit_body_size(app: Flask, cap: int) -> None:
    """Cap request bodies at ``cap`` bytes: 413 with one sentence when a body is larger.

    Werkzeug enforces MAX_CONTENT_LENGTH on a Content-Length, and on a chunked body only when the server
    terminates the input (gunicorn does); :func:`read_body` counts the bytes itself, so the cap holds either
    way. The limit is one byte above the cap so that a body of exactly ``cap`` bytes ends before werkzeug's
    own limit and ``read_body`` sees the one byte too many of a larger body.
    """
    app.config["MAX_CONTENT_LENGTH"] = cap + 1
    app.config["RADLABEL_BODY_CAP"] = cap

    @app.errorhandler(413)
    def too_large(_error):
        return {"error": f"the request body is larger than the {_size(cap)} this service accepts"}, 413


def _size(cap: int) -> str:
    return f"{cap // 2**20} MB" if cap >= 2**20 else f"{cap} bytes"


def read_body(cap: int) -> bytes:
    """The request body, at most ``cap`` bytes; RequestEntityTooLarge (413) when it is larger."""
    if request.content_length is not None and request.content_length > cap:
        raise RequestEntityTooLarge()  # refused before a byte of it is read
    chunks, size = [], 0
    while True:
        chunk = request.stream.read(min(_READ_CHUNK, cap + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            raise RequestEntityTooLarge()


def json_body(cap: int):
    """The request body parsed as JSON (a bounded read); None when it is not JSON or not sent as JSON."""
    raw = read_body(cap)
    if not request.is_json:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # invalid JSON or text, or nested thousands deep
        return None


def require_basic_auth(app: Flask, user: str, password: str, open_paths: tuple[str, ...] = ("/health",),
                       realm: str = "radlabel") -> None:
    """Every request but those to ``open_paths`` needs HTTP basic auth as ``user``/``password``; others get
    401 with one sentence (unknown paths too, so an outsider learns nothing about the routes)."""
    expected_user, expected_password = user.encode(), password.encode()
    if not expected_password:
        raise ValueError("an empty password would let anyone in")

    @app.before_request
    def check_credentials():
        if request.path in open_paths:
            return None
        given = request.authorization
        if given is not None and given.type == "basic":
            # Both comparisons always run, each in constant time: no timing tells which part was wrong.
            user_ok = hmac.compare_digest((given.username or "").encode("utf-8", "replace"), expected_user)
            password_ok = hmac.compare_digest((given.password or "").encode("utf-8", "replace"), expected_password)
            if user_ok & password_ok:
                return None
        return ({"error": "this service needs HTTP basic auth with radlabel's credentials for it"}, 401,
                {"WWW-Authenticate": f'Basic realm="{realm}"'})
