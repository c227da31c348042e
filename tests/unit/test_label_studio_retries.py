"""Only requests that change nothing are retried on a Label Studio 5xx (a retried POST duplicated a project)."""

from __future__ import annotations

import httpx
import pytest

from types import SimpleNamespace

from label_studio_sdk.core.api_error import ApiError

from connectors.label_studio import ReadRetries, client


def flaky(status_first: int):
    calls = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return httpx.Response(status_first if len(calls) == 1 else 200, json={"n": len(calls)})
    return httpx.MockTransport(answer), calls


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_read_that_failed_on_the_server_is_asked_again(method):
    inner, calls = flaky(500)
    with httpx.Client(transport=ReadRetries(inner, backoff_s=0)) as session:
        assert session.request(method, "http://ls/api/projects").status_code == 200
    assert calls == [method, method]


@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT", "DELETE"])
def test_a_write_is_sent_once_even_when_the_server_answers_500(method):
    inner, calls = flaky(500)
    with httpx.Client(transport=ReadRetries(inner, backoff_s=0)) as session:
        assert session.request(method, "http://ls/api/projects", json={}).status_code == 500
    assert calls == [method]


def test_a_client_error_is_not_retried_and_retries_end():
    inner, calls = flaky(404)
    with httpx.Client(transport=ReadRetries(inner, backoff_s=0)) as session:
        assert session.get("http://ls/api/projects/9").status_code == 404
    assert calls == ["GET"]
    always = httpx.MockTransport(lambda request: httpx.Response(503))
    with httpx.Client(transport=ReadRetries(always, attempts=3, backoff_s=0)) as session:
        assert session.get("http://ls/api/projects").status_code == 503


def test_the_sdk_client_posts_once():
    """The SDK's own retries are off: a project creation that answers 500 is not sent again, a listing is."""
    settings = SimpleNamespace(url=lambda service: "http://ls", secrets=lambda: {"label_studio_token": "t"})
    inner, calls = flaky(500)
    ls = client(settings, transport=inner)
    with pytest.raises(ApiError):
        ls.projects.create(title="x")
    assert calls == ["POST"]
    inner, calls = flaky(502)
    client(settings, transport=inner).users.whoami()
    assert calls == ["GET", "GET"]
