"""The ports: what the pipeline's stages need from the systems around them, as small typed interfaces.

A stage takes these in its constructor (``connectors.wiring`` builds the real ones from settings, and
nothing outside the adapters layer builds one: ``tests/unit/test_architecture.py``), so that it can be
tested against in-memory fakes (``tests/unit/fakes.py``). The adapters that implement them:

- ``DicomArchive``: ``connectors.dicomweb.OrthancDicomWeb`` (the research archive, read-write; the source
  PACS, read-only — its ``store`` is refused by Orthanc itself);
- ``JobQueue``: ``connectors.jobs.InProcessQueue`` / ``RQQueue`` (defined there);
- the state store: one repository per table group over ``connectors.database.Database``
  (``state.StateStore`` series, ``adjudications.Adjudications``, ``seg_import.ImportedSegs``,
  ``readers.ReaderRegistry``, ``task_index``, ``authorship`` ledgers, ``jobs.JobStore``);
- the annotation platform: the Label Studio SDK client (``connectors.label_studio.client``), used through
  the part of its surface named by ``AnnotationPlatform``, with ``label_studio.user_id``/``as_dict`` and
  ``projects`` (markers, ``find_protocol_project``, ``marked_project``) as the one place for lookups.
"""

from __future__ import annotations

from typing import Any, Iterable, Protocol

from pydicom import Dataset

from connectors.jobs import JobQueue

__all__ = ["AnnotationPlatform", "DicomArchive", "JobQueue"]


class DicomArchive(Protocol):
    """Search, retrieve and store over DICOMweb (QIDO-RS, WADO-RS, STOW-RS)."""

    def search_series(self, study_uid: str | None = None, fields: list[str] | None = None, **filters) -> list[dict]: ...

    def retrieve_series(self, study_uid: str, series_uid: str, media_types: tuple | None = None) -> list[Dataset]: ...

    def store(self, datasets: Iterable[Dataset]) -> Any: ...  # a StoreResult: .stored, .failed


class AnnotationPlatform(Protocol):
    """The Label Studio client's resources radlabel uses (each a small set of calls on plain data):
    ``projects`` (list, get, create, update), ``tasks`` (list, get, create), ``annotations`` (list,
    create, update), ``predictions`` (create), ``users`` (list, create, whoami), ``webhooks`` (list,
    create, update), ``ml`` (list, create, update)."""

    projects: Any
    tasks: Any
    annotations: Any
    predictions: Any
    users: Any
    webhooks: Any
    ml: Any
