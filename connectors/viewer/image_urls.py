"""Signed, expiring URLs of rendered slices: the one place they are made and checked.

Label Studio's editor loads a task's slices from the viewer front in the annotator's browser, so
each URL is a capability: ``/radlabel/images/<key>/<preset>/<n>.png?exp=<unix time>&sig=<HMAC>``.
The HMAC (a key of ours) covers the path and the expiry, so neither can be changed; an expired URL
is refused. Label Studio keeps the URLs in its tasks, so ``radlabel sync`` signs them again before
they run out (``needs_refresh``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from urllib.parse import parse_qs, urlsplit

__all__ = ["lifetime_s", "signed_url", "valid", "needs_refresh", "resigned"]


def lifetime_s() -> int:
    """How long a URL lives: RADLABEL_IMAGE_URL_DAYS (default 30 days)."""
    days = os.environ.get("RADLABEL_IMAGE_URL_DAYS", "30")
    return int(float(days) * 86400) if days.replace(".", "", 1).isdigit() else 30 * 86400


def _signature(key: str, path: str, expires: int) -> str:
    return hmac.new(key.encode(), f"{path}?exp={expires}".encode(), hashlib.sha256).hexdigest()[:32]


def signed_url(base: str, key: str, path: str, now: float | None = None) -> str:
    expires = int(now if now is not None else time.time()) + lifetime_s()
    return f"{base}{path}?exp={expires}&sig={_signature(key, path, expires)}"


def valid(key: str, path: str, expires: str, signature: str, now: float | None = None) -> bool:
    """Is this the URL we signed, and still alive? (constant-time comparison)"""
    if not expires.isdigit() or len(expires) > 12:
        return False
    good = hmac.compare_digest(signature.encode(), _signature(key, path, int(expires)).encode())
    return good and int(expires) > (now if now is not None else time.time())


def _expiry(url: str) -> int:
    values = parse_qs(urlsplit(url).query).get("exp") or ["0"]
    return int(values[0]) if values[0].isdigit() else 0


def needs_refresh(urls: list[str], now: float | None = None) -> bool:
    """Do these URLs expire within half their lifetime (or carry no expiry at all)?"""
    moment = now if now is not None else time.time()
    return any(_expiry(url) < moment + lifetime_s() / 2 for url in urls)


def resigned(base: str, key: str, url: str, now: float | None = None) -> str:
    """The same slice's URL with a fresh expiry."""
    return signed_url(base, key, urlsplit(url).path, now)
