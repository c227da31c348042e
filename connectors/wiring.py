"""Builds the adapters from settings: the one place that knows which client reaches which system.

Stages take an ``Adapters`` (or their own fakes of its parts, in tests); the CLI, the demo, the servers
and the workers build it here. Each adapter is built on first use and kept: one Label Studio client,
one DICOMweb client per archive, one state database per process. Nothing outside the adapters layer
builds a client itself (``tests/unit/test_architecture.py`` checks it).
"""

from __future__ import annotations

from functools import cached_property

from connectors.adjudications import Adjudications
from connectors.database import Database, state_database
from connectors.dicomweb import OrthancDicomWeb
from connectors.jobs import Handler, InProcessQueue, JobQueue, RQQueue
from connectors.label_studio import client as label_studio_client
from connectors.state import StateStore
from radlabel.settings import Settings

__all__ = ["Adapters", "adapters"]


class Adapters:
    def __init__(self, settings: Settings):
        self.settings = settings

    @cached_property
    def research_archive(self) -> OrthancDicomWeb:
        """radlabel's research archive, as the pipeline (DICOMweb GET + STOW)."""
        return OrthancDicomWeb.from_settings(self.settings)

    @cached_property
    def source_pacs(self) -> OrthancDicomWeb:
        """The clinical PACS, read-only (sync only)."""
        return OrthancDicomWeb.source_pacs(self.settings)

    @cached_property
    def hospital_pacs(self) -> OrthancDicomWeb:
        """The local PACS stand-in as the hospital fills it (samples, campaign studies)."""
        return OrthancDicomWeb.pacs_loader(self.settings)

    def research_archive_with(self, **options) -> OrthancDicomWeb:
        """The research archive with other client options (e.g. a longer ``timeout`` for one large STOW)."""
        return OrthancDicomWeb.from_settings(self.settings, **options)

    @cached_property
    def label_studio(self):
        return label_studio_client(self.settings)

    @cached_property
    def database(self) -> Database:
        return state_database(self.settings)

    @cached_property
    def series_state(self) -> StateStore:
        return StateStore(self.database)

    @cached_property
    def adjudications(self) -> Adjudications:
        return Adjudications(self.database)

    @cached_property
    def worker_queue(self) -> RQQueue | None:
        """The workers' queue in the scale profile (RQ over Redis); None in the default profile (run here)."""
        return RQQueue(self.settings) if self.settings.profile == "scale" else None

    def job_queue(self, handlers: dict[str, Handler]) -> JobQueue:
        """The workers' queue, or in the default profile an in-process queue running ``handlers``."""
        return self.worker_queue or InProcessQueue(self.settings, handlers)


def adapters(settings: Settings) -> Adapters:
    return Adapters(settings)
