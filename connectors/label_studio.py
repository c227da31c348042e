"""Label Studio access for radlabel: the SDK client, set up from our settings,
with transport errors turned into one-line messages."""

from __future__ import annotations

import contextlib
import time
import weakref
from typing import Iterator

import httpx
from label_studio_sdk.client import LabelStudio

from radlabel.errors import RadlabelError
from radlabel.settings import Settings

__all__ = ["ReadRetries", "as_dict", "client", "every_item", "label_studio_errors", "user_id"]


RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class ReadRetries(httpx.BaseTransport):
    """An httpx transport that retries only requests that change nothing.

    The SDK retries every method on a 5xx, but Label Studio (SQLite under load) can answer 500 after it
    created what a POST asked for: a retried project creation left two projects with one protocol's
    marker on a loaded CI machine. GET and HEAD are retried here (after a short back-off); a write is
    sent once and its error reported. Connection failures, where nothing reached the server, are retried
    by the inner transport for every method."""

    def __init__(self, inner: httpx.BaseTransport | None = None, attempts: int = 3, backoff_s: float = 0.5):
        self.inner = inner if inner is not None else httpx.HTTPTransport(retries=2)
        self.attempts, self.backoff_s = attempts, backoff_s

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(1, self.attempts + 1):
            response = self.inner.handle_request(request)
            if (request.method not in ("GET", "HEAD") or attempt == self.attempts
                    or response.status_code not in RETRIED_STATUSES):
                return response
            response.close()
            time.sleep(self.backoff_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.inner.close()


def client(settings: Settings, transport: httpx.BaseTransport | None = None) -> LabelStudio:
    """The SDK client; ``transport`` replaces the network (tests)."""
    session = httpx.Client(timeout=60, follow_redirects=True, transport=ReadRetries(transport))
    return LabelStudio(base_url=settings.url("label_studio"), api_key=settings.secrets()["label_studio_token"],
                       timeout=60, max_retries=0, httpx_client=session)


@contextlib.contextmanager
def label_studio_errors(what: str) -> Iterator[None]:
    """Turn the SDK's HTTP and connection errors into a RadlabelError naming the action."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    try:
        yield
    except ApiError as exc:
        body = exc.body if isinstance(exc.body, (str, dict)) else str(exc.body)
        detail = body.get("validation_errors") or body.get("detail") or body if isinstance(body, dict) else body
        raise RadlabelError(f"Label Studio refused to {what} (HTTP {exc.status_code}): {str(detail)[:400]}") from None
    except httpx.HTTPError as exc:
        raise RadlabelError(f"Label Studio is not reachable to {what} ({exc.__class__.__name__}): "
                            "run `radlabel up` and `radlabel status`.") from None


def every_item(pager, page_size: int) -> Iterator:
    """The items of an SDK listing, page by page, stopping at the first short page: the SDK's own
    iteration asks for one page more than there is, which doubled a filtered listing's time. A listing
    that fills its last page exactly still ends with Label Studio's 404 "Invalid page"."""
    from label_studio_sdk.core.api_error import ApiError

    page = pager
    while page is not None:
        items = page.items or []
        yield from items
        if len(items) < page_size or not page.has_next:
            return
        try:
            page = page.next_page()
        except ApiError as exc:
            if exc.status_code != 404:
                raise
            return


def as_dict(item) -> dict:
    """An SDK object (a pydantic model) as a plain dict; a dict as it is."""
    if isinstance(item, dict):
        return item
    return item.model_dump() if hasattr(item, "model_dump") else item.dict()


# email -> user id, per client: a user's id never changes, and the listing is a full scan of every user.
_user_ids: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def user_id(ls, email: str, create_as: str | None = None) -> int | None:
    """The Label Studio user of an email (any case), created with the username ``create_as`` (no password,
    API only) when missing and one is given; else None when missing."""
    email = email.strip().lower()
    try:
        known = _user_ids.setdefault(ls, {})
    except TypeError:  # a client that cannot be weakly referenced (a test's stand-in) is not cached
        known = {}
    if email not in known:
        with label_studio_errors(f"find the Label Studio user {email}"):
            found = [user.id for user in ls.users.list() if (user.email or "").lower() == email]
            if not found and create_as is None:
                return None
            known[email] = found[0] if found else ls.users.create(email=email, username=create_as).id
    return known[email]
