"""The readers' DICOMweb gateway and Orthanc's access filter, as plain functions (the real stack is in
tests/integration/test_trust_boundary.py)."""

from __future__ import annotations

import base64
import json

import pytest

from connectors.stack.orthanc_access import allowed, user_of
from connectors.viewer.gateway import ReaderScope, parse_path

S, SE, I = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2", "1.2.826.0.1.3680043.8.498.3"


@pytest.mark.parametrize("path, kind", [
    ("/dicom-web/studies?StudyInstanceUID=1.2", "studies"),
    (f"/dicom-web/studies/{S}/series", "series_of_study"),
    (f"/dicom-web/studies/{S}/series/{SE}/metadata", "series"),
    (f"/dicom-web/studies/{S}/series/{SE}/instances", "series"),
    (f"/dicom-web/studies/{S}/series/{SE}/instances/{I}/frames/1", "instance"),
    (f"/dicom-web/studies/{S}/series/{SE}/instances/{I}/frames/1,2,3", "instance"),
    (f"/dicom-web/studies/{S}/series/{SE}/instances/{I}/bulk/7fe00010", "instance"),
    (f"/dicom-web/studies/{S}/series/{SE}/instances/{I}", "instance"),
])
def test_the_shapes_ohif_uses_pass(path, kind):
    route = parse_path(path)
    assert route is not None and route.kind == kind
    if kind != "studies":
        assert route.study == S


@pytest.mark.parametrize("path", [
    "/dicom-web/%2e%2e/patients", "/dicom-web/../patients", "/dicom-web/%252e%252e/app/explorer.html",
    "/dicom-web/studies/..%2f..%2fpatients", f"/dicom-web/studies/{S}/../../patients", "/dicom-web//studies",
    "/dicom-web/series", "/dicom-web/instances", f"/dicom-web/studies/{S}", f"/dicom-web/studies/{S}/metadata",
    f"/dicom-web/studies/{S}%2Fseries", f"/dicom-web/studies/{S}/series/{SE}/instances/{I}/frames/1/../../..",
    "/dicom-web/studies/1.2.3;x", "/dicom-web/studies/1..2/series", "/dicom-web/studies/.1/series",
    f"/dicom-web/studies/{S}/series/{SE}/instances/{I}/bulk/..", "/patients", "/dicom-web", "/dicom-web/",
])
def test_traversal_and_whole_study_retrievals_do_not_parse(path):
    assert parse_path(path) is None


def test_reader_scope_recomputes_when_an_asked_series_is_missing_but_not_more_often_than_allowed():
    calls = []

    def compute(reader):
        calls.append(reader)
        return {"1.1": "1"} if len(calls) == 1 else {"1.1": "1", "2.2": "2"}

    scope = ReaderScope(compute, ttl=60, min_refresh=0)
    assert scope.series("r", 1) == {"1.1": "1"}
    assert scope.series("r", 1, must_include="1.1") == {"1.1": "1"} and len(calls) == 1  # cached
    assert scope.series("r", 1, must_include="2.2")["2.2"] == "2" and len(calls) == 2  # a new task opens at once
    slow = ReaderScope(compute, ttl=60, min_refresh=3600)
    slow.series("r", 1)
    slow.series("r", 1, must_include="9.9")
    assert len(calls) == 3  # a guessed UID does not make every request recompute


def _basic(user: str, password: str = "x") -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


ROLES = {"radlabel": "pipeline", "radlabel-gateway": "gateway", "radlabel-sync": "reader", "admin": "admin"}


def test_orthanc_filter_names_the_basic_auth_user():
    assert user_of(_basic("radlabel-gateway")) == "radlabel-gateway"
    assert user_of({"authorization": "Bearer abc"}) == "" and user_of({"Authorization": "Basic !!!"}) == ""


@pytest.mark.parametrize("user, method, uri, expected", [
    ("radlabel", "GET", "/dicom-web/studies", True),
    ("radlabel", "POST", "/dicom-web/studies", True),
    ("radlabel", "DELETE", "/studies/abc", False),
    ("radlabel", "GET", "/patients", False),
    ("radlabel", "PUT", "/dicom-web/studies", False),
    ("radlabel-gateway", "GET", "/dicom-web/studies/1.2/series", True),
    ("radlabel-gateway", "POST", "/dicom-web/studies", False),
    ("radlabel-gateway", "GET", "/app/explorer.html", False),
    ("radlabel-gateway", "GET", "/dicom-web/../patients", False),
    ("radlabel-gateway", "GET", "/dicom-web/%2e%2e/patients", False),
    ("radlabel-sync", "GET", "/dicom-web/studies", True),
    ("radlabel-sync", "POST", "/dicom-web/studies", False),
    ("radlabel-sync", "GET", "/system", True),
    ("admin", "DELETE", "/studies/abc", True),
    ("stranger", "GET", "/dicom-web/studies", False),
])
def test_orthanc_filter_gives_each_user_only_its_rights(user, method, uri, expected):
    assert allowed(ROLES, method, uri, _basic(user), {}) is expected


def test_orthanc_filter_refuses_method_overrides_for_every_user_but_the_admin():
    override = _basic("radlabel") | {"X-HTTP-Method-Override": "DELETE"}
    assert allowed(ROLES, "GET", "/dicom-web/studies", override, {}) is False
    assert allowed(ROLES, "GET", "/dicom-web/studies", _basic("radlabel"), {"_method": "DELETE"}) is False
    assert allowed(ROLES, "GET", "/dicom-web/studies", _basic("radlabel"), {"limit": "1"}) is True


class FakeArchive:
    """Stands in for the research archive's DICOMweb: records what the gateway asked for."""

    def __init__(self):
        self.asked = []

    def get(self, url, params=None, headers=None, auth=None, **kwargs):
        from types import SimpleNamespace

        self.asked.append((url, params, headers, auth))
        if url.endswith("/dicom-web/studies"):
            rows = [{"0020000D": {"vr": "UI", "Value": [s]}, "00201206": {"vr": "IS", "Value": [3]},
                     "00080061": {"vr": "CS", "Value": ["CT", "SEG"]}} for s in ("1.1", "2.2")]
        else:
            rows = [{"0020000E": {"vr": "UI", "Value": [uid]}, "00080060": {"vr": "CS", "Value": [modality]}}
                    for uid, modality in (("1.1.1", "CT"), ("1.1.2", "SEG"), ("1.1.3", "CT"))]
        body = json.dumps(rows).encode()
        return SimpleNamespace(status_code=200, content=body, headers={"Content-Type": "application/dicom+json"},
                               iter_content=lambda chunk_size: iter([body]))


@pytest.fixture
def gateway_client():
    from flask import Flask

    from connectors.viewer.gateway import DicomWebGateway

    archive = FakeArchive()
    gateway = DicomWebGateway("http://archive", ("radlabel-gateway", "pw"),
                              ReaderScope(lambda reader: {"1.1.1": "1.1"}), session=archive)
    app = Flask(__name__)

    @app.route("/dicom-web/<path:path>", methods=["GET", "POST", "DELETE"])
    def dicomweb(path):
        return gateway.answer("reader-a", 1)

    return app.test_client(), archive


def test_searches_are_cut_to_the_readers_own_study_and_series(gateway_client):
    client, archive = gateway_client
    studies = client.get("/dicom-web/studies?includefield=PatientName").json
    assert [s["0020000D"]["Value"] for s in studies] == [["1.1"]]
    assert "00201206" not in studies[0] and "00080061" not in studies[0]  # no counts or modalities that tell of SEGs
    series = client.get("/dicom-web/studies/1.1/series").json
    assert [s["0020000E"]["Value"] for s in series] == [["1.1.1"]]  # not the SEG, not the unassigned series
    assert archive.asked[0][0] == "http://archive/dicom-web/studies" and archive.asked[0][3][0] == "radlabel-gateway"


def test_only_get_on_the_readers_series_reaches_the_archive(gateway_client):
    client, archive = gateway_client
    assert client.get("/dicom-web/studies/1.1/series/1.1.1/metadata").status_code == 200
    assert client.get("/dicom-web/studies/1.1/series/1.1.3/metadata").status_code == 404
    assert client.get("/dicom-web/studies/2.2/series").status_code == 404
    assert client.get("/dicom-web/studies/2.2/series/1.1.1/metadata").status_code == 404  # right series, wrong study
    assert client.post("/dicom-web/studies").status_code == 404
    assert client.delete("/dicom-web/studies/1.1/series/1.1.1").status_code == 404
    reply = client.get("/dicom-web/studies/1.1/series/1.1.1/metadata?_method=DELETE&limit=1",
                       headers={"X-HTTP-Method-Override": "DELETE", "Cookie": "x=y"})
    assert reply.status_code == 200
    url, params, headers, _ = archive.asked[-1]
    assert params == [("limit", "1")] and not any(k.lower() in ("x-http-method-override", "cookie") for k in headers)
    assert len(archive.asked) == 2  # the refused requests never reached the archive


def test_a_seg_series_is_never_listed_even_if_a_scope_named_it():
    from flask import Flask

    from connectors.viewer.gateway import DicomWebGateway

    gateway = DicomWebGateway("http://archive", ("radlabel-gateway", "pw"),
                              ReaderScope(lambda reader: {"1.1.1": "1.1", "1.1.2": "1.1"}), session=FakeArchive())
    app = Flask(__name__)
    app.add_url_rule("/dicom-web/<path:path>", view_func=lambda path: gateway.answer("reader-a", 1))
    series = app.test_client().get("/dicom-web/studies/1.1/series").json
    assert [s["0020000E"]["Value"] for s in series] == [["1.1.1"]]  # 1.1.2 is the archive's SEG series
