"""The DICOMweb requests radlabel writes itself (connectors/dicomweb.py): the multipart reader of WADO-RS replies
and the STOW-RS request, checked against dicomweb-client's own multipart encoder and decoder (the reference) and
a transport that records what would be sent."""

from __future__ import annotations

import io
import json

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from connectors import dicomweb
from connectors.dicomweb import OrthancDicomWeb, _multipart_parts
from radlabel.dicom_files import part10_bytes
from radlabel.errors import RadlabelError
from radlabel.phantom import make_ct_study

BOUNDARY = "0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
# bodies that look like the syntax around them: a CRLF, a dash pair, a boundary cut one byte short
PARTS = [b"first", b"", b"\r\n--" + BOUNDARY[:-1].encode() + b"\r\n", b"--\r\n\r\n", bytes(range(256)) * 40]


def _chunks(message: bytes, size: int):
    return [message[start:start + size] for start in range(0, len(message), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 41, 64, 1000, 1 << 20])
def test_parts_come_out_as_dicomweb_client_put_them_in_whatever_the_chunking(size):
    message = DICOMwebClient._encode_multipart_message(PARTS, CONTENT_TYPE)
    assert list(_multipart_parts(_chunks(message, size), BOUNDARY.encode())) == PARTS


def test_a_preamble_a_part_without_headers_and_an_epilogue():
    message = (b"a preamble no one reads\r\n--B\r\nContent-Type: application/dicom\r\n\r\nA\r\n--B\r\n\r\nB"
               b"\r\n--B--\r\nan epilogue")
    assert list(_multipart_parts(_chunks(message, 5), b"B")) == [b"A", b"B"]


@pytest.mark.parametrize("cut", ["before the closing boundary", "inside a part", "before any boundary"])
def test_a_reply_cut_short_is_an_error_not_fewer_instances(cut):
    message = DICOMwebClient._encode_multipart_message(PARTS, CONTENT_TYPE)
    end = {"before the closing boundary": message.rindex(b"--" + BOUNDARY.encode() + b"--"),
           "inside a part": message.index(b"first") + 2, "before any boundary": 1}[cut]
    with pytest.raises(RadlabelError, match="cut short"):
        list(_multipart_parts(_chunks(message[:end], 64), BOUNDARY.encode()))


def test_a_part_without_its_blank_line_is_refused():
    with pytest.raises(RadlabelError, match="blank line"):
        list(_multipart_parts([b"--B\r\nContent-Type: application/dicom\r\nA\r\n--B--"], b"B"))


class _Reply:
    def __init__(self, status: int, payload: dict | None = None):
        self.status_code = status
        self.content = json.dumps(payload).encode() if payload is not None else b""

    def json(self):
        return json.loads(self.content)

    def close(self):
        pass


class _Transport(requests.Session):
    """Records each request and answers from a script."""

    def __init__(self, replies):
        super().__init__()
        self.replies, self.sent = list(replies), []

    def request(self, method, url, **kwargs):
        self.sent.append((method, url, kwargs))
        return self.replies.pop(0)


def _client(transport: _Transport) -> OrthancDicomWeb:
    client = OrthancDicomWeb("http://archive.invalid/dicom-web", "user", "password", stow_workers=1)
    client._local.session = transport  # the worker thread is ours in these tests: _store_batch is called directly
    return client


def _stored(uids, failed=()):
    def items(values):
        return {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": [uid]}} for uid in values]}
    return {"00081199": items(uids)} | ({"00081198": items(failed)} if failed else {})


def _decode_with_reference(body: bytes, content_type: str):
    class Response:
        headers = {"content-type": content_type}
        content = body

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    return DICOMwebClient("http://archive.invalid")._decode_multipart_message(Response(), stream=False)


def test_a_stow_request_carries_each_instance_as_pydicom_writes_it():
    study = make_ct_study(seed=3, slices=3, size=32)
    transport = _Transport([_Reply(200, _stored([str(ds.SOPInstanceUID) for ds in study.datasets]))])
    result = _client(transport)._store_batch(study.datasets)
    method, url, kwargs = transport.sent[0]
    assert (method, url) == ("post", "http://archive.invalid/dicom-web/studies")
    assert kwargs["headers"]["Accept"] == "application/dicom+json"
    parts = list(_decode_with_reference(kwargs["data"], kwargs["headers"]["Content-Type"]))
    assert parts == [part10_bytes(ds) for ds in study.datasets]
    assert [str(pydicom.dcmread(io.BytesIO(part)).SOPInstanceUID) for part in parts] == result.stored
    assert not result.failed


def test_failed_instances_are_reported_and_a_refusal_is_one_sentence():
    study = make_ct_study(seed=3, slices=2, size=32)
    uids = [str(ds.SOPInstanceUID) for ds in study.datasets]
    result = _client(_Transport([_Reply(202, _stored(uids[:1], failed=uids[1:]))]))._store_batch(study.datasets)
    assert (result.stored, result.failed) == (uids[:1], uids[1:])
    with pytest.raises(RadlabelError, match=r"refused a STOW-RS request \(400\)"):
        _client(_Transport([_Reply(400)]))._store_batch(study.datasets)


def test_busy_answers_are_tried_again_and_other_errors_are_not(monkeypatch):
    waits = []
    monkeypatch.setattr(dicomweb.time, "sleep", waits.append)
    study = make_ct_study(seed=3, slices=1, size=32)
    busy = _Transport([_Reply(503), _Reply(429), _Reply(200, _stored([str(study.datasets[0].SOPInstanceUID)]))])
    assert _client(busy)._store_batch(study.datasets).stored == [str(study.datasets[0].SOPInstanceUID)]
    assert (len(busy.sent), waits) == (3, [2, 4])
    refused = _Transport([_Reply(500), _Reply(200, _stored([]))])
    with pytest.raises(RadlabelError, match=r"\(500\)"):
        _client(refused)._store_batch(study.datasets)
    assert len(refused.sent) == 1


class _Unreachable(_Transport):
    def __init__(self, outages: int, replies):
        super().__init__(replies)
        self.outages = outages

    def request(self, method, url, **kwargs):
        if self.outages:
            self.outages -= 1
            self.sent.append((method, url, kwargs))
            raise requests.ConnectionError("connection refused")
        return super().request(method, url, **kwargs)


def test_an_archive_restarting_is_ridden_out_and_one_gone_for_good_is_one_sentence(monkeypatch):
    waits = []
    monkeypatch.setattr(dicomweb.time, "sleep", waits.append)
    study = make_ct_study(seed=3, slices=1, size=32)
    uid = str(study.datasets[0].SOPInstanceUID)
    assert _client(_Unreachable(2, [_Reply(200, _stored([uid]))]))._store_batch(study.datasets).stored == [uid]
    assert waits == [2, 4]
    gone = _Unreachable(99, [])
    with pytest.raises(RadlabelError, match=r"not reachable at http://archive.invalid/dicom-web: run `radlabel up`"):
        _client(gone)._store_batch(study.datasets)
    assert len(gone.sent) == 5 and waits[2:] == [2, 4, 8, 16]


def test_a_retried_retrieval_logs_no_source_uid(monkeypatch, caplog):
    """A retrieval's URL names the source study and series (identifiers of the PACS side): retrying it must not
    write that URL to a log (urllib3's own retries log it as a warning)."""
    monkeypatch.setattr(dicomweb.time, "sleep", lambda seconds: None)
    client = OrthancDicomWeb("http://127.0.0.1:9/dicom-web", "user", "password")  # the discard port: refused
    with caplog.at_level("DEBUG"), pytest.raises(RadlabelError, match="did not answer a request to retrieve"):
        client.retrieve_series("1.2.3.4444", "1.2.3.5555")
    assert "4444" not in caplog.text and "5555" not in caplog.text


class _Refusal(_Reply):
    headers: dict = {}

    def __init__(self, status: int):
        super().__init__(status)
        self.url = "http://archive.invalid/dicom-web/studies/1.2.3.4444/series/1.2.3.5555"
        self.reason = "Not Found"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def raise_for_status(self):
        requests.Response.raise_for_status(self)


def test_a_refused_retrieval_is_one_sentence_without_the_source_uids():
    client = _client(_Transport([_Refusal(404)]))
    with pytest.raises(RadlabelError) as refused:
        client.retrieve_series("1.2.3.4444", "1.2.3.5555")
    assert "answered 404 to a request to retrieve a series" in str(refused.value)
    assert "4444" not in str(refused.value) and "5555" not in str(refused.value)


def test_a_refused_search_is_one_sentence_without_the_source_uids(monkeypatch):
    client = OrthancDicomWeb("http://archive.invalid/dicom-web", "user", "password")

    class Refusing:
        def search_for_series(self, **kwargs):
            reply = requests.Response()
            reply.status_code, reply.reason = 403, "Forbidden"
            reply.url = "http://archive.invalid/dicom-web/studies/1.2.3.4444/series"
            reply.raise_for_status()

    client._local.client = Refusing()
    with pytest.raises(RadlabelError) as refused:
        client.search_series("1.2.3.4444")
    assert "answered 403 to a request to search series" in str(refused.value) and "4444" not in str(refused.value)
