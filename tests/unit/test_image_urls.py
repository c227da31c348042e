"""Signed, expiring slice URLs (connectors/viewer/image_urls.py)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from connectors.viewer import image_urls

KEY, PATH, BASE = "k" * 40, "/radlabel/images/abc123/lung/0003.png", "http://127.0.0.1:3000"


def parts(url):
    query = parse_qs(urlsplit(url).query)
    return urlsplit(url).path, query["exp"][0], query["sig"][0]


def test_a_url_is_valid_until_it_expires_and_only_for_its_path(monkeypatch):
    monkeypatch.setenv("RADLABEL_IMAGE_URL_DAYS", "2")
    url = image_urls.signed_url(BASE, KEY, PATH, now=1_000_000)
    path, expires, sig = parts(url)
    assert path == PATH and int(expires) == 1_000_000 + 2 * 86400
    assert image_urls.valid(KEY, PATH, expires, sig, now=1_000_000 + 86400)
    assert not image_urls.valid(KEY, PATH, expires, sig, now=1_000_000 + 2 * 86400)  # expired
    assert not image_urls.valid(KEY, PATH.replace("0003", "0004"), expires, sig, now=1_000_000)  # another slice
    assert not image_urls.valid(KEY, PATH, str(int(expires) + 86400), sig, now=1_000_000)  # a longer life
    assert not image_urls.valid("x" * 40, PATH, expires, sig, now=1_000_000)  # another key
    assert not image_urls.valid(KEY, PATH, "1e9", sig, now=0) and not image_urls.valid(KEY, PATH, "", sig, now=0)


def test_urls_are_signed_again_in_the_second_half_of_their_life(monkeypatch):
    monkeypatch.setenv("RADLABEL_IMAGE_URL_DAYS", "10")
    url = image_urls.signed_url(BASE, KEY, PATH, now=0)
    assert not image_urls.needs_refresh([url], now=4 * 86400)
    assert image_urls.needs_refresh([url], now=6 * 86400)
    assert image_urls.needs_refresh([BASE + PATH + "?sig=old"], now=0)  # no expiry at all: sign it
    fresh = image_urls.resigned(BASE, KEY, url, now=6 * 86400)
    path, expires, sig = parts(fresh)
    assert path == PATH and image_urls.valid(KEY, PATH, expires, sig, now=12 * 86400)
