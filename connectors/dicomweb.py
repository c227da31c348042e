"""The DICOMweb client radlabel uses for Orthanc: dicomweb-client, set up right.

Transport concerns live here and nowhere else: authentication, no gzip
(Orthanc's gzip made frame retrieval ~15x slower), explicit timeouts, and
STOW-RS in concurrent batches (measured in ``bench/stow.py``). QIDO-RS is
dicomweb-client's; the STOW-RS request and the series retrieval (WADO-RS) are
written here for speed (``_store_batch``, ``iter_series``; measured in
``bench/deid.py``). Every request rides out an Orthanc restart as
dicomweb-client does: tried 5 times, 2, 4, 8 and 16 s apart; what still fails
becomes one RadlabelError here."""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import Dataset
from requests.adapters import HTTPAdapter

from radlabel.dicom_files import write_part10
from radlabel.errors import RadlabelError
from radlabel.settings import Settings


@dataclass
class StoreResult:
    stored: list[str] = field(default_factory=list)  # SOP Instance UIDs
    failed: list[str] = field(default_factory=list)

    def merge(self, other: "StoreResult") -> None:
        self.stored += other.stored
        self.failed += other.failed


_ATTEMPTS = 5
_RETRIED_STATUSES = (408, 429, 503, 504)
_AS_STORED = (("application/dicom", "*"),)


def _boundary(headers) -> bytes:
    """The boundary of a multipart/related reply."""
    for parameter in headers.get("Content-Type", "").split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "boundary" and value.strip('"'):
            return value.strip('"').encode()
    raise RadlabelError(f"a WADO-RS reply came as {headers.get('Content-Type')!r}, not multipart/related with a "
                        "boundary.")


def _multipart_parts(chunks: Iterable[bytes], boundary: bytes) -> Iterator[bytes]:
    """The bodies of a multipart message's parts (RFC 2046), each as soon as its closing delimiter arrives,
    copied once out of the buffer the chunks are added to (deleting from a bytearray's front is cheap)."""
    delimiter = b"\r\n--" + boundary
    buffer = bytearray(b"\r\n")  # so the first boundary reads like every later one
    opened, search_from = False, 0
    for chunk in chunks:
        buffer += chunk
        while (end := buffer.find(delimiter, search_from)) >= 0:
            if opened:  # (what comes before the first boundary is the preamble)
                headers_end = buffer.find(b"\r\n\r\n", 0, end)
                if headers_end < 0:
                    raise RadlabelError("a WADO-RS reply has a part without the blank line that ends its headers.")
                with memoryview(buffer) as view:
                    part = bytes(view[headers_end + 4:end])
                yield part
            opened = True
            del buffer[:end + len(delimiter)]
            search_from = 0
        search_from = max(0, len(buffer) - len(delimiter) + 1)
    if not (opened and buffer.startswith(b"--")):
        raise RadlabelError("a WADO-RS reply ended before its closing boundary: it was cut short.")


def _json_sop_uids(outcome: dict, sequence_tag: str) -> list[str]:
    """The SOP Instance UIDs (0008,1155) in a STOW-RS reply's Referenced or Failed SOP Sequence (DICOM JSON)."""
    items = (outcome.get(sequence_tag) or {}).get("Value") or []
    return [str(uid) for item in items for uid in ((item.get("00081155") or {}).get("Value") or [])[:1]]


class OrthancDicomWeb:
    """A DICOMweb client for our Orthanc (QIDO-RS, WADO-RS, STOW-RS)."""

    def __init__(self, url: str, username: str, password: str, timeout: float = 300.0,
                 stow_batch: int = 8, stow_workers: int = 3, name: str = "Orthanc"):
        self.url = url.rstrip("/")
        self.name = name  # says which archive a sentence is about
        self.stow_batch = stow_batch
        self.stow_workers = stow_workers
        self._auth = (username, password)
        self._timeout = timeout
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid: int | None = None
        self._pool_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs) -> "OrthancDicomWeb":
        """The research archive, as radlabel's pipeline (search, retrieve, store)."""
        return cls(settings.dicomweb_url, settings.orthanc_user, settings.secrets()["orthanc_password"], **kwargs)

    @classmethod
    def source_pacs(cls, settings: Settings, **kwargs) -> "OrthancDicomWeb":
        """The clinical PACS with sync's read-only credentials (the archive refuses anything but GET)."""
        user = os.environ.get("RADLABEL_PACS_USER") or settings.pacs_sync_user
        return cls(settings.pacs_url, user, settings.secrets()["pacs_sync_password"], name="the PACS", **kwargs)

    @classmethod
    def pacs_loader(cls, settings: Settings, **kwargs) -> "OrthancDicomWeb":
        """The local PACS stand-in as the hospital that fills it (samples, demo); never used by the pipeline."""
        if settings.external_pacs_url:
            raise RadlabelError("a site PACS is configured (RADLABEL_PACS_URL): radlabel does not store into it; "
                                "load studies with the site's own tools.")
        return cls(settings.url("pacs") + "/dicom-web", settings.pacs_admin_user,
                   settings.secrets()["pacs_admin_password"], name="the PACS", **kwargs)

    def session(self) -> requests.Session:
        session = requests.Session()
        session.auth = self._auth
        session.headers["Accept-Encoding"] = "identity"
        # No urllib3 retries: they log each retried URL, and a retrieval's URL names the source study and series.
        # A connection that fails is tried again by ``_send`` (every request here may be sent again: reads, and
        # STOW-RS, where an instance stored twice is stored once).
        session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=max(4, self.stow_workers)))
        return session

    @contextlib.contextmanager
    def _reachable(self, what: str):
        """Transport failures that outlived the retries, and refusals, become one sentence. Never requests' own
        text: its URL names the source study or series."""
        try:
            yield
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "an error"
            raise RadlabelError(f"{self.name} answered {status} to a request to {what}: see its log.") from None
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            raise RadlabelError(f"{self.name} at {self.url} did not answer a request to {what} "
                                f"({exc.__class__.__name__}): check it with `radlabel status` or start it with "
                                "`radlabel up`, then run the command again.") from None

    @property
    def client(self) -> DICOMwebClient:
        """One dicomweb-client per thread (requests sessions are not thread-safe)."""
        if not hasattr(self._local, "client"):
            self._local.client = DICOMwebClient(self.url, session=self.session(), timeout=self._timeout)
        return self._local.client

    @property
    def _thread_session(self) -> requests.Session:
        """This thread's kept-alive session for the requests made here, not by dicomweb-client (a STOW body goes
        with its length: Orthanc took chunked STOW requests markedly slower)."""
        if not hasattr(self._local, "session"):
            self._local.session = self.session()
        return self._local.session

    # -- STOW-RS -----------------------------------------------------------
    def store(self, datasets: Iterable[Dataset]) -> StoreResult:
        """Store instances in concurrent batches as they come; report every instance's outcome.

        ``datasets`` may be a generator (copies de-identified while the source streams in): a batch goes out as
        soon as it is full, so making the next one (our CPU) overlaps Orthanc parsing and writing the last ones
        (its CPU and disk). At most two batches per worker wait in memory.
        """
        result, futures, pool = StoreResult(), [], self._stow_pool()
        slots = threading.BoundedSemaphore(2 * self.stow_workers)

        def send(batch: list[Dataset]) -> None:
            slots.acquire()
            futures.append(pool.submit(self._store_batch, batch))
            futures[-1].add_done_callback(lambda _: slots.release())

        batch: list[Dataset] = []
        try:
            for ds in datasets:
                batch.append(ds)
                if len(batch) >= self.stow_batch:
                    send(batch)
                    batch = []
            if batch:
                send(batch)
        except BaseException:  # the producer failed: nothing more is sent, nothing is left running behind it
            for future in futures:
                future.cancel()
            wait(futures)
            raise
        for future in futures:
            result.merge(future.result())
        return result

    def _stow_pool(self) -> ThreadPoolExecutor:
        """STOW workers that live as long as the client, each with its own kept-alive session (one per process:
        a pool inherited through fork has no threads)."""
        with self._pool_lock:
            if self._pool_pid != os.getpid():
                self._pool = ThreadPoolExecutor(self.stow_workers, thread_name_prefix="stow")
                self._pool_pid = os.getpid()
            return self._pool

    def _store_batch(self, batch: list[Dataset]) -> StoreResult:
        """One STOW-RS request. Measured need (bench/deid.py): dicomweb-client encodes each instance with pydicom
        and copies the message twice; here each instance is written straight into the message (``write_part10``,
        byte for byte what pydicom writes)."""
        boundary = uuid.uuid4().hex.encode()
        body = io.BytesIO()
        for ds in batch:
            # A dataset made in memory has no preamble, and Orthanc would then store and serve a file that
            # pydicom (and others) refuse to read.
            if getattr(ds, "preamble", None) is None:
                ds.preamble = b"\x00" * 128
            body.write(b"--" + boundary + b"\r\nContent-Type: application/dicom\r\n\r\n")
            write_part10(body, ds)
            body.write(b"\r\n")
        body.write(b"--" + boundary + b"--\r\n")
        headers = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary.decode()}',
                   "Accept": "application/dicom+json"}
        try:
            reply = self._send("post", self.url + "/studies", self._thread_session, data=body.getvalue(),
                               headers=headers)
        except requests.ConnectionError:
            raise RadlabelError(f"{self.name} is not reachable at {self.url}: run `radlabel up`.") from None
        if reply.status_code >= 400:
            raise RadlabelError(f"{self.name} refused a STOW-RS request ({reply.status_code}): see its log.")
        outcome = reply.json() if reply.content else {}
        return StoreResult(stored=_json_sop_uids(outcome, "00081199"), failed=_json_sop_uids(outcome, "00081198"))

    def _send(self, method: str, url: str, session: requests.Session, **kwargs) -> requests.Response:
        """One request, tried again as dicomweb-client tries its own (no connection, or 408, 429, 503, 504:
        5 tries, 2 to 16 s apart, so an Orthanc restart is ridden out); the last reply is returned whatever its
        status, the last connection failure raised."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                reply = session.request(method, url, timeout=self._timeout, **kwargs)
            except requests.ConnectionError:
                if attempt == _ATTEMPTS:
                    raise
            else:
                if reply.status_code not in _RETRIED_STATUSES or attempt == _ATTEMPTS:
                    return reply
                reply.close()
            time.sleep(2 ** attempt)
        raise AssertionError("unreachable")

    # -- QIDO-RS / WADO-RS ---------------------------------------------------
    def search_studies(self, **filters) -> list[dict]:
        with self._reachable("search studies"):
            return self.client.search_for_studies(search_filters=filters or None)

    def search_series(self, study_uid: str | None = None, fields: list[str] | None = None, **filters) -> list[dict]:
        with self._reachable("search series"):
            return self.client.search_for_series(study_instance_uid=study_uid, fields=fields,
                                                 search_filters=filters or None, get_remaining=True)

    def search_instances(self, study_uid: str, series_uid: str) -> list[dict]:
        with self._reachable("search instances"):
            return self.client.search_for_instances(study_instance_uid=study_uid, series_instance_uid=series_uid)

    def iter_series(self, study_uid: str, series_uid: str, media_types: tuple | None = _AS_STORED) -> Iterator[Dataset]:
        """The series' instances (as stored, unless ``media_types`` asks for dicomweb-client's default transfer
        syntax), one by one as they arrive: WADO-RS, one streamed response.

        Measured need (bench/deid.py): dicomweb-client copies each instance four times on its way out of the
        multipart response; ``_multipart_parts`` copies it once."""
        accept = 'multipart/related; type="application/dicom"'
        if media_types == _AS_STORED:
            accept += "; transfer-syntax=*"
        elif media_types is not None:
            raise ValueError(f"media_types {media_types!r}: only None or {_AS_STORED!r} are retrieved here.")
        with self._reachable("retrieve a series"):
            reply = self._send("get", f"{self.url}/studies/{study_uid}/series/{series_uid}", self._thread_session,
                               headers={"Accept": accept}, stream=True)
            with reply:
                reply.raise_for_status()  # (``_reachable`` says it in one sentence, without the URL)
                for part in _multipart_parts(reply.iter_content(1 << 20), _boundary(reply.headers)):
                    yield pydicom.dcmread(io.BytesIO(part))

    def retrieve_series(self, study_uid: str, series_uid: str, media_types: tuple | None = None) -> list[Dataset]:
        return list(self.iter_series(study_uid, series_uid, media_types))
