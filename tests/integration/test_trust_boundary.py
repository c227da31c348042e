"""The trust boundary, attacked from outside through the real stack (both profiles).

An outsider and a reader try the front that faces readers: no credential, another reader's series,
traversal to Orthanc's REST API (encoded, double-encoded, dot segments), method overrides, writes
through the front, SEG series, instances smuggled under an allowed series, enumeration of task ids.
Every attempt must be refused, and no source PHI value (read from the PACS by this test, as the
hospital) may appear in any answer. A reader's token reaches exactly their own task's series.
"""

from __future__ import annotations

import http.client
import io
import json

import pytest
import requests

from connectors.dicomweb import OrthancDicomWeb
from connectors.label_studio import client
from connectors.readers import add_reader
from connectors.sync import Syncer
from radlabel import seg as seg_codec
from radlabel.phantom import make_ct_study
from tests.integration.conftest import protocol_variant

PHI_TAGS = ("00100010", "00100020", "00100030", "00080050", "00080080")  # name, MRN, birth date, accession, institution


@pytest.fixture(scope="module")
def protocol(settings):
    return protocol_variant(settings, "ct-lung-nodules.yaml", "trust_test", "^trust test$", min_slices=2)


@pytest.fixture(scope="module")
def world(settings, protocol):
    """Two synced series; reader A may read the first; the second already has its reads from others."""
    studies = [make_ct_study(seed=seed, slices=6, size=64, pixel_spacing=6.0, lung_nodules=1) for seed in (7301, 7302)]
    for study in studies:
        for ds in study.datasets:
            ds.SeriesDescription = "trust test"
    pacs = OrthancDicomWeb.pacs_loader(settings)
    for study in studies:
        assert not pacs.store(study.datasets).failed
    syncer = Syncer(settings, protocol)
    summary = syncer.run()
    records = [syncer.state.get(syncer.series_key(s.series_uid), protocol.id) for s in studies]
    assert summary.synced == 2 and all(r.status == "done" for r in records)
    ls = client(settings)
    others = [ls.users.create(email=f"trust.other{n}@hospital.org", username=f"trust-other{n}").id for n in (1, 2)]
    for user in others:
        ls.annotations.create(id=records[1].task_id, result=[], completed_by=user)
    reader_a, token_a = add_reader(settings, "trust.a@hospital.org", "radiologist")
    # a SEG in the first task's research study (as if someone had put it there): never served to readers
    research = OrthancDicomWeb.from_settings(settings)
    copies = research.retrieve_series(records[0].pseudo_study_uid, records[0].pseudo_series_uid)
    order = ls.tasks.get(id=records[0].task_id).data["sop_instance_uids"]
    by_uid = {str(ds.SOPInstanceUID): ds for ds in copies}
    import numpy as np

    mask = np.zeros((len(order), int(copies[0].Rows), int(copies[0].Columns)), bool)
    mask[2, 10:20, 10:20] = True
    seg = seg_codec.encode([by_uid[u] for u in order], {"solid_nodule": mask}, protocol, series_description="planted",
                          content_creator="reader-999^")
    assert not research.store([seg]).failed
    phi = set()
    hospital = (settings.pacs_admin_user, settings.secrets()["pacs_admin_password"])
    for study in studies:
        rows = requests.get(settings.url("pacs") + "/dicom-web/studies", auth=hospital, timeout=10,
                            params={"StudyInstanceUID": study.study_uid, "includefield": ",".join(PHI_TAGS)}).json()
        for tag in PHI_TAGS:
            for value in rows[0].get(tag, {}).get("Value", []):
                text = value.get("Alphabetic") if isinstance(value, dict) else str(value)
                if text and len(text) >= 4:
                    phi.add(text)
    assert len(phi) >= 6, phi
    return {"records": records, "studies": studies, "token": token_a, "reader": reader_a, "phi": phi,
            "seg_series": str(seg.SeriesInstanceUID), "seg_sop": str(seg.SOPInstanceUID)}


def front(settings, path, token=None, method="GET", headers=None, body=None) -> tuple[int, bytes]:
    """A raw request to the front: the path is sent exactly as given (no client-side normalisation)."""
    connection = http.client.HTTPConnection(settings.host, settings.ports["viewer"], timeout=60)
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    connection.request(method, path, body=body, headers=sent)
    reply = connection.getresponse()
    data = reply.read()
    connection.close()
    return reply.status, data


def no_phi(world, *bodies: bytes) -> None:
    for body in bodies:
        text = body.decode("utf-8", "replace")
        leaked = [value for value in world["phi"] if value in text]
        assert not leaked, f"source PHI in an answer: {leaked}"


def series_path(record, tail="metadata"):
    return f"/dicom-web/studies/{record.pseudo_study_uid}/series/{record.pseudo_series_uid}/{tail}"


ATTACK_PATHS = [
    "/dicom-web/studies?includefield=PatientName", "/dicom-web/%2e%2e/patients", "/dicom-web/%2e%2e/app/explorer.html",
    "/dicom-web/%252e%252e/patients", "/dicom-web/..%2fpatients", "/dicom-web/studies/%2e%2e/%2e%2e/patients",
    "/dicom-web/../../patients", "/dicom-web//patients", "/dicom-web/series", "/dicom-web/instances",
    "/dicom-web/studies/1.2.3/metadata", "/dicom-web%2f..%2fpatients", "/radlabel/protocols/trust_test.json",
    "/radlabel/api/worklist",
]


def test_an_outsider_gets_nothing_from_the_front(settings, world):
    bodies = []
    for path in ATTACK_PATHS:
        status, body = front(settings, path)
        bodies.append(body)
        assert status in (401, 404), (path, status)
    status, body = front(settings, series_path(world["records"][0]))
    assert status == 401 and b"sign in" in body
    no_phi(world, *bodies)


@pytest.mark.parametrize("path", ATTACK_PATHS[1:-2] + ["/dicom-web/studies/1.2/series/%2e%2e/%2e%2e/%2e%2e/patients"])
def test_a_readers_token_does_not_open_traversal_or_other_shapes(settings, world, path):
    status, body = front(settings, path, world["token"])
    assert status == 404, (path, status, body[:200])
    assert b"Patient" not in body and b"explorer" not in body.lower()
    no_phi(world, body)


def test_a_reader_reaches_exactly_their_own_tasks_series(settings, world):
    mine, other = world["records"]
    token = world["token"]
    status, body = front(settings, "/dicom-web/studies?includefield=PatientName", token)
    studies = json.loads(body)
    visible = {s["0020000D"]["Value"][0] for s in studies}
    # exactly the studies of the tasks the readers' API offers this reader (who has read nothing yet)
    worklist = json.loads(front(settings, "/radlabel/api/worklist", token)[1])["tasks"]
    assert status == 200 and visible == {t["study"] for t in worklist if t["study"]}
    assert mine.pseudo_study_uid in visible and other.pseudo_study_uid not in visible
    assert not any(tag in study for study in studies for tag in ("00201206", "00201208", "00080061"))
    status, body = front(settings, f"/dicom-web/studies/{mine.pseudo_study_uid}/series", token)
    assert status == 200 and [s["0020000E"]["Value"][0] for s in json.loads(body)] == [mine.pseudo_series_uid]
    status, body = front(settings, series_path(mine), token)
    metadata = json.loads(body)
    assert status == 200 and len(metadata) == 6
    sop = metadata[0]["00080018"]["Value"][0]
    status, frame = front(settings, series_path(mine, f"instances/{sop}/frames/1"), token,
                          headers={"Accept": "multipart/related; type=application/octet-stream"})
    assert status == 200 and len(frame) > 64 * 64
    # the other task (already read by others), the SEG in my own study, and an instance smuggled under my series
    assert front(settings, series_path(other), token)[0] == 404
    assert front(settings, f"/dicom-web/studies/{other.pseudo_study_uid}/series", token)[0] == 404
    seg_path = f"/dicom-web/studies/{mine.pseudo_study_uid}/series/{world['seg_series']}/metadata"
    assert front(settings, seg_path, token)[0] == 404
    smuggled = series_path(mine, f"instances/{world['seg_sop']}/metadata")
    assert front(settings, smuggled, token)[0] == 404
    no_phi(world, body, frame)


def test_writes_and_method_overrides_through_the_front_change_nothing(settings, world):
    mine = world["records"][0]
    token = world["token"]
    research = OrthancDicomWeb.from_settings(settings)
    before = len(research.search_instances(mine.pseudo_study_uid, mine.pseudo_series_uid))
    buffer = io.BytesIO()
    world["studies"][0].datasets[0].save_as(buffer, enforce_file_format=True)
    body = b"--x\r\nContent-Type: application/dicom\r\n\r\n" + buffer.getvalue() + b"\r\n--x--\r\n"
    stow = {"Content-Type": 'multipart/related; type="application/dicom"; boundary=x'}
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert front(settings, "/dicom-web/studies", token, method, stow, body)[0] in (404, 405), method
        assert front(settings, series_path(mine, ""), token, method)[0] in (404, 405), method
    for header in ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"):
        status, _ = front(settings, series_path(mine), token, headers={header: "DELETE"})
        assert status == 200  # answered as the GET it is
    assert front(settings, series_path(mine) + "?_method=DELETE", token)[0] == 200
    assert len(research.search_instances(mine.pseudo_study_uid, mine.pseudo_series_uid)) == before
    outsider_stow = front(settings, "/dicom-web/studies", None, "POST", stow, body)
    assert outsider_stow[0] == 401


def test_unknown_and_forbidden_tasks_answer_alike_and_a_revoked_token_is_refused(settings, world):
    other = world["records"][1]
    token = world["token"]
    forbidden = front(settings, f"/radlabel/api/tasks/{other.task_id}", token)
    unknown = front(settings, "/radlabel/api/tasks/987654321", token)
    assert forbidden[0] == unknown[0] == 404
    assert json.loads(forbidden[1])["error"].replace(str(other.task_id), "N") == \
        json.loads(unknown[1])["error"].replace("987654321", "N")
    reader, token_b = add_reader(settings, "trust.revoked@hospital.org", "radiologist")
    assert front(settings, "/dicom-web/studies", token_b)[0] == 200
    from connectors.readers import ReaderRegistry

    ReaderRegistry.from_settings(settings).revoke("trust.revoked@hospital.org")
    status, body = front(settings, "/dicom-web/studies", token_b)
    assert status == 401 and b"revoked" in body


def test_the_archives_refuse_overwrites(settings, world):
    """The research archive keeps the first copy of an instance: a second STOW cannot replace it."""
    mine = world["records"][0]
    research = OrthancDicomWeb.from_settings(settings)
    [copy] = [ds for ds in research.retrieve_series(mine.pseudo_study_uid, mine.pseudo_series_uid)][:1]
    original = copy.PixelData
    copy.PixelData = bytes(len(original))
    research.store([copy])
    again = [ds for ds in research.retrieve_series(mine.pseudo_study_uid, mine.pseudo_series_uid)
             if ds.SOPInstanceUID == copy.SOPInstanceUID]
    assert again[0].PixelData == original


def test_slice_urls_expire_and_sync_signs_them_again(settings, world, protocol, monkeypatch):
    from connectors.viewer import image_urls

    mine = world["records"][0]
    ls = client(settings)
    before = ls.tasks.get(id=mine.task_id).data["images"]
    url = before[0]
    reply = requests.get(url, timeout=10)
    assert reply.status_code == 200 and reply.headers["Cache-Control"].startswith("private")
    path = url.split("?")[0][len(settings.url("viewer")):]
    key = settings.secrets()["image_url_key"]
    expired = image_urls.signed_url(settings.url("viewer"), key, path, now=0)  # signed right, long dead
    assert requests.get(expired, timeout=10).status_code == 403
    monkeypatch.setenv("RADLABEL_IMAGE_URL_DAYS", "100000")  # every URL is now in the second half of its life
    summary = Syncer(settings, protocol).run()
    assert summary.refreshed_image_urls >= 2
    fresh = ls.tasks.get(id=mine.task_id).data
    assert fresh["images"][0] != url and requests.get(fresh["images"][0], timeout=10).status_code == 200
    assert [u.split("?")[0] for u in fresh["images"]] == [u.split("?")[0] for u in before]  # the same slices
