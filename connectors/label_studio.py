"""Label Studio access for radlabel: the SDK client, set up from our settings,
with transport errors turned into one-line messages."""

from __future__ import annotations

import contextlib
from typing import Iterator

from label_studio_sdk.client import LabelStudio

from radlabel.errors import RadlabelError
from radlabel.settings import Settings


def client(settings: Settings) -> LabelStudio:
    return LabelStudio(base_url=settings.url("label_studio"), api_key=settings.secrets()["label_studio_token"],
                       timeout=60)


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
