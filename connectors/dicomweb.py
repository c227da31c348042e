"""The DICOMweb client radlabel uses for Orthanc: dicomweb-client, set up right.

Transport concerns live here and nowhere else: authentication, no gzip
(Orthanc's gzip made frame retrieval ~15x slower), explicit timeouts, and
STOW-RS in concurrent batches (measured in ``bench/stow.py``). The DICOM logic
is dicomweb-client's, and so is riding out an Orthanc restart: it tries every
request 5 times, 2, 4, 8 and 16 s apart; what still fails becomes one
RadlabelError here.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import Dataset
from requests.adapters import HTTPAdapter

from radlabel.errors import RadlabelError
from radlabel.settings import Settings


@dataclass
class StoreResult:
    stored: list[str] = field(default_factory=list)  # SOP Instance UIDs
    failed: list[str] = field(default_factory=list)

    def merge(self, other: "StoreResult") -> None:
        self.stored += other.stored
        self.failed += other.failed


def _sop_uids(sequence: Sequence[Dataset] | None) -> list[str]:
    return [str(item.ReferencedSOPInstanceUID) for item in (sequence or []) if "ReferencedSOPInstanceUID" in item]


class OrthancDicomWeb:
    """A DICOMweb client for our Orthanc (QIDO-RS, WADO-RS, STOW-RS)."""

    def __init__(self, url: str, username: str, password: str, timeout: float = 300.0,
                 stow_batch: int = 16, stow_workers: int = 2, name: str = "Orthanc"):
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
        session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=max(4, self.stow_workers)))
        return session

    @contextlib.contextmanager
    def _reachable(self, what: str):
        """Transport failures that outlived dicomweb-client's retries become one sentence (HTTP errors pass
        unchanged: callers may expect a 404)."""
        try:
            yield
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
    def _stow_client(self) -> DICOMwebClient:
        """A STOW worker's client: a request body goes with its length, not in 1 MB chunks (dicomweb-client's
        default above 1 MB): Orthanc took chunked STOW requests markedly slower."""
        if not hasattr(self._local, "stow_client"):
            self._local.stow_client = DICOMwebClient(self.url, session=self.session(), timeout=self._timeout,
                                                     chunk_size=1 << 40)
        return self._local.stow_client

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
        for ds in batch:
            # dicomweb-client writes a dataset as it is: one made in memory has no preamble, and
            # Orthanc would then store and serve a file that pydicom (and others) refuse to read.
            if getattr(ds, "preamble", None) is None:
                ds.preamble = b"\x00" * 128
        try:
            reply = self._stow_client.store_instances(batch)
        except requests.HTTPError as exc:
            raise RadlabelError(f"{self.name} refused a STOW-RS request ({exc.response.status_code}): see its log.") from None
        except requests.ConnectionError:
            raise RadlabelError(f"{self.name} is not reachable at {self.url}: run `radlabel up`.") from None
        return StoreResult(
            stored=_sop_uids(reply.get("ReferencedSOPSequence")),
            failed=_sop_uids(reply.get("FailedSOPSequence")),
        )

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

    def iter_series(self, study_uid: str, series_uid: str) -> Iterator[Dataset]:
        """The series' instances as stored, one by one as they arrive (WADO-RS, one streamed response)."""
        with self._reachable("retrieve a series"):
            yield from self.client.iter_series(study_uid, series_uid, media_types=(("application/dicom", "*"),))

    def retrieve_series(self, study_uid: str, series_uid: str, media_types: tuple | None = None) -> list[Dataset]:
        with self._reachable("retrieve a series"):
            return self.client.retrieve_series(study_uid, series_uid, media_types=media_types)

