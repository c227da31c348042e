"""The readers' door to the research archive: read-only DICOMweb, each reader's own series only.

OHIF sends the reader's bearer token with every DICOMweb request. A request is answered only when

- the token is a registered, unrevoked reader's (401 otherwise);
- its method is GET and its raw path has one of the QIDO/WADO shapes below, with UIDs made of
  digits and dots — so no dot segment, encoded character or double slash survives, before or
  after decoding (404 otherwise);
- the study and series it names belong to one of this reader's tasks (404 otherwise: another
  reader's study is not acknowledged). Search results are cut to the reader's own series; SEG
  series are never served (a reader's own reads come back through the readers' API, others'
  reads only as arbitration overlays to a senior).

Upstream it talks to the research archive only — the PACS's address is not in its settings —
as the least-privileged ``radlabel-gateway`` user, which the archive itself limits to DICOMweb GET.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable

import requests
from flask import Response, request

__all__ = ["ReaderScope", "DicomWebGateway", "parse_path"]

_UID = r"[0-9]{1,64}(?:\.[0-9]{1,64}){0,40}"
_SERIES = rf"studies/(?P<study>{_UID})/series/(?P<series>{_UID})"
_INSTANCE = rf"{_SERIES}/instances/(?P<instance>{_UID})"
# Every path shape OHIF's DICOMweb data source and image loader use; nothing else passes.
_SHAPES = [
    ("studies", re.compile(r"studies")),
    ("series_of_study", re.compile(rf"studies/(?P<study>{_UID})/series")),
    ("series", re.compile(rf"{_SERIES}(?:/metadata|/instances|/rendered|/thumbnail)?")),
    ("instance", re.compile(rf"{_INSTANCE}(?:/metadata|/rendered|/thumbnail|/frames/[0-9]{{1,6}}(?:,[0-9]{{1,6}}){{0,63}}"
                            rf"(?:/rendered)?|/bulk(?:/[0-9A-Fa-f]{{1,8}}){{1,16}})?")),
]
_STUDY_UID, _SERIES_UID, _MODALITY = "0020000D", "0020000E", "00080060"
# Study-level counts and modalities would tell a reader that others' SEGs exist.
_STUDY_LEAKS = ("00201206", "00201208", "00080061")
_FORWARDED_HEADERS = ("accept", "range", "if-none-match", "if-modified-since")
_PASSED_BACK = ("content-type", "content-length", "etag", "last-modified", "content-range")


@dataclass(frozen=True)
class Route:
    kind: str
    study: str | None
    series: str | None


def parse_path(raw_path: str) -> Route | None:
    """The route of a raw (still percent-encoded) request path under ``/dicom-web/``, or None."""
    path = raw_path.split("?", 1)[0]
    if not path.startswith("/dicom-web/"):
        return None
    rest = path[len("/dicom-web/"):]
    for kind, shape in _SHAPES:
        match = shape.fullmatch(rest)
        if match:
            groups = match.groupdict()
            return Route(kind, groups.get("study"), groups.get("series"))
    return None


class ReaderScope:
    """Which (study, series) each reader may read: computed from their tasks, kept for a short while."""

    def __init__(self, compute: Callable[[object], dict[str, str]], ttl: float = 30.0, min_refresh: float = 2.0):
        self._compute = compute  # reader -> {series UID: study UID}
        self._ttl, self._min_refresh = ttl, min_refresh
        self._cache: dict[object, tuple[float, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def series(self, reader, key, must_include: str | None = None) -> dict[str, str]:
        """The reader's series; recomputed when stale, or (not more often than ``min_refresh``) when a
        study or series asked for is missing — a task just assigned must open without waiting."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
        fresh = cached and now - cached[0] < self._ttl
        missing = must_include is not None and cached and must_include not in cached[1] and \
            must_include not in cached[1].values()
        if fresh and not (missing and now - cached[0] >= self._min_refresh):
            return cached[1]
        value = self._compute(reader)
        with self._lock:
            self._cache[key] = (now, value)
        return value

    def forget(self, key) -> None:
        with self._lock:
            self._cache.pop(key, None)


def _value(row: dict, tag: str) -> str:
    values = (row.get(tag) or {}).get("Value") or [""]
    return str(values[0])


class DicomWebGateway:
    """GET-only proxy from ``/dicom-web`` to the research archive, cut to one reader's series."""

    def __init__(self, archive_url: str, auth: tuple[str, str], scope: ReaderScope, session: requests.Session | None = None):
        """``archive_url``: the research archive's root (paths keep their ``/dicom-web/`` prefix)."""
        self.archive_url = archive_url.rstrip("/")
        self.auth = auth
        self.scope = scope
        self.session = session or requests.Session()

    def answer(self, reader, reader_key) -> Response:
        raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.full_path
        route = parse_path(raw)
        if request.method != "GET" or route is None:
            return _refusal(404, "not a DICOMweb request a reader may make (read-only QIDO/WADO of your own tasks).")
        wanted = route.series or route.study
        allowed = self.scope.series(reader, reader_key, must_include=wanted)
        if route.series and allowed.get(route.series) != route.study:
            return _refusal(404, "no such series among your tasks.")
        if route.kind == "series_of_study" and route.study not in allowed.values():
            return _refusal(404, "no such study among your tasks.")
        upstream = self._forward(raw)
        if upstream is None:
            return _refusal(502, "the research archive is not reachable: try again in a minute.")
        if route.kind in ("studies", "series_of_study") and upstream.status_code == 200:
            return self._filtered(upstream, route, allowed)
        headers = [(k, v) for k, v in upstream.headers.items() if k.lower() in _PASSED_BACK]
        return Response(upstream.iter_content(chunk_size=1 << 16), status=upstream.status_code, headers=headers)

    def _forward(self, raw: str) -> requests.Response | None:
        params = [(k, v) for k, v in request.args.items(multi=True) if not k.startswith("_")]  # no _method
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED_HEADERS}
        # Orthanc builds BulkDataURIs from Host: make them point back at this front; never gzip (stack notes).
        headers |= {"Host": request.host, "Accept-Encoding": "identity"}
        path = raw.split("?", 1)[0]
        try:
            return self.session.get(self.archive_url + path, params=params, headers=headers, auth=self.auth,
                                    stream=True, timeout=(5, 300), allow_redirects=False)
        except requests.RequestException:
            return None

    @staticmethod
    def _filtered(upstream: requests.Response, route: Route, allowed: dict[str, str]) -> Response:
        try:
            rows = json.loads(upstream.content or b"[]")
        except ValueError:
            return _refusal(502, "the research archive answered a search with something that is not JSON.")
        if route.kind == "studies":
            studies = set(allowed.values())
            rows = [_cut_study(r) for r in rows if _value(r, _STUDY_UID) in studies]
        else:
            rows = [r for r in rows if allowed.get(_value(r, _SERIES_UID)) == route.study and _value(r, _MODALITY) != "SEG"]
        return Response(json.dumps(rows), status=200, mimetype="application/dicom+json")


def _cut_study(row: dict) -> dict:
    return {tag: value for tag, value in row.items() if tag not in _STUDY_LEAKS}


def _refusal(status: int, message: str) -> Response:
    return Response(json.dumps({"error": message}), status=status, mimetype="application/json")
