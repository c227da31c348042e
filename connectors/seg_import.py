"""Readers' DICOM-SEGs → Label Studio: each becomes an annotation of the synced task, once.

Reads enter only through authenticated paths: a reader's SEG arrives through the readers' API
(which imports it itself and records it in ``imported_segs``), or an administrator imports a SEG
file with ``radlabel seg import FILE --protocol P --reader R``, naming the reader. A SEG found in
the research archive that neither path brought is never taken as anyone's read — whatever its
ContentCreatorName says — and sync reports it as not imported.

The import maps each segment to its protocol class (by segment label, display name, or segmented
property type), turns 3-D masks into per-slice brush RLE with the slice's ``item_index``, and
attributes the annotation to the named reader's Label Studio user. The SEG may reference the
research copy or the source series it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from connectors.adjudications import CONSENSUS_CREATOR
from connectors.database import Database
from connectors.label_studio import label_studio_errors
from connectors.state import StateStore
from radlabel import seg as seg_codec
from radlabel.audit import audit_log
from radlabel.brush_rle import mask_regions
from radlabel.ingest.deid import Deidentifier
from radlabel.protocol.enum import Geometry
from radlabel.protocol.labelconfig import class_targets
from radlabel.protocol.template import Protocol
from radlabel.settings import Settings

__all__ = ["IMPORTED_SEGS_SCHEMA", "ImportedSegs", "SegImport", "SegImporter", "store_read"]


@dataclass
class SegImport:
    seg_key: str
    task_id: int | None
    annotation_id: int | None
    regions: int = 0
    reader: str = ""
    skipped_segments: list[str] = field(default_factory=list)
    outcome: str = "imported"

    def as_dict(self) -> dict:
        return self.__dict__.copy()


IMPORTED_SEGS_SCHEMA = ("CREATE TABLE IF NOT EXISTS imported_segs (seg_key TEXT PRIMARY KEY, task_id INTEGER,"
                        " annotation_id INTEGER)")


class ImportedSegs:
    """SEGs already turned into Label Studio annotations (by this import or by the readers' API delivery)."""

    def __init__(self, database: Database):
        self.database = database
        database.ensure(IMPORTED_SEGS_SCHEMA)

    def get(self, seg_key: str) -> tuple[int | None, int | None] | None:
        """(task id, annotation id — None for a SEG looked at and not imported) of a SEG seen before, or None."""
        with self.database.connect() as db:
            row = db.execute("SELECT task_id, annotation_id FROM imported_segs WHERE seg_key=?", (seg_key,)).fetchone()
        return tuple(row) if row else None

    def add(self, seg_key: str, task_id: int, annotation_id: int | None) -> None:
        with self.database.connect() as db:
            db.execute("INSERT INTO imported_segs VALUES (?,?,?) ON CONFLICT DO NOTHING", (seg_key, task_id, annotation_id))


def store_read(settings: Settings, ls, task_id: int, user_id: int, masks: dict[str, np.ndarray], source: str,
               protocol: Protocol, **extra) -> int:
    """A SEG's class masks as ``user_id``'s annotation of a task (vouched by radlabel); the annotation id. Each class
    lands on its preset's brush control. ``extra`` goes on the annotation as it is (an OHIF read's ``lead_time``)."""
    from connectors.authorship import post_read

    regions = mask_regions(masks, targets=class_targets(protocol, Geometry.MASK))
    with label_studio_errors(f"store the SEG in task {task_id}"):
        return post_read(settings, ls, task_id, user_id, regions, source, **extra)


class SegImporter:
    """Takes what it needs of sync: the research archive, the series state and the pseudonymiser of the protocol."""

    def __init__(self, settings: Settings, protocol: Protocol, ls, archive, state: StateStore, deid: Deidentifier):
        self.settings = settings
        self.protocol = protocol
        self.ls = ls
        self.archive = archive  # search_series / retrieve_series on the research archive
        self.state = state
        self.deid = deid
        self.imported = ImportedSegs(state.database)  # the series state's database

    @classmethod
    def for_syncer(cls, syncer) -> "SegImporter":
        """The importer of a sync run's protocol, with that run's collaborators."""
        return cls(syncer.settings, syncer.protocol, syncer.ls, syncer.client, syncer.state, syncer.deid)

    def records(self) -> dict:
        return {r.pseudo_series_uid: r for r in self.state.all(self.protocol.id) if r.status == "done"}

    def run(self) -> list[SegImport]:
        """Report the SEGs of this protocol's series in the research archive: those radlabel imported, and
        those it will not take (not delivered through the readers' API nor imported by an administrator)."""
        records = self.records()
        if not records:
            return []
        results = []
        client = self.archive
        for row in client.search_series(Modality="SEG"):
            study_uid, series_uid = row["0020000D"]["Value"][0], row["0020000E"]["Value"][0]
            for ds in client.retrieve_series(study_uid, series_uid):
                result = self.check_one(ds, records)
                if result:
                    results.append(result)
        return results

    def _known(self, ds, records: dict):
        """(SEG key, series record, its earlier import or None) of a reader's SEG of this protocol; None for a final
        SEG (a result, not a read) or a SEG of another protocol's series."""
        if str(ds.get("ContentCreatorName", "")) == CONSENSUS_CREATOR:
            return None
        record = self._record_for(ds, records)
        if record is None:
            return None
        seg_key = self.deid.digest("seg", str(ds.SOPInstanceUID)).hex()[:24]
        done = self.imported.get(seg_key)
        return seg_key, record, SegImport(seg_key, done[0], done[1], outcome="already imported") if done else None

    def check_one(self, ds, records: dict) -> SegImport | None:
        known = self._known(ds, records)
        if known is None:
            return None
        seg_key, record, earlier = known
        return earlier or SegImport(seg_key, record.task_id, None, outcome="not imported: it did not come through the readers' "
                         "API; an administrator may import it with `radlabel seg import FILE --reader R`")

    def _record_for(self, ds, records: dict):
        referenced = str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID) if "ReferencedSeriesSequence" in ds else ""
        return records.get(referenced) or records.get(self.deid.uid(referenced))

    def import_file(self, ds, reader: str) -> SegImport:
        """An administrator's import of one SEG as the named reader's read (``radlabel seg import``)."""
        from radlabel.errors import RadlabelError

        pseudonym = self.registered_reader(reader)
        result = self.import_one(ds, self.records(), pseudonym)
        if result is None:
            raise RadlabelError(f"the SEG references no synced series of protocol {self.protocol.id} (or is a final "
                                "SEG): check --protocol and that the series was synced.")
        return result

    def registered_reader(self, reader: str) -> str:
        """The pseudonym of a registered reader given by email or pseudonym."""
        from connectors.readers import ReaderRegistry
        from radlabel.errors import RadlabelError

        for known in ReaderRegistry(self.state.database).readers():
            if reader.strip().lower() in (known.email, known.pseudonym):
                return known.pseudonym
        raise RadlabelError(f"--reader {reader!r} is not a registered reader: give the email or reader-N pseudonym "
                            "that `radlabel readers list` shows.")

    def _reader_user(self, pseudonym: str) -> int:
        """The Label Studio user of a registered reader (``registered_reader`` checked the pseudonym)."""
        from connectors.readers import ReaderRegistry

        return next(r.ls_user_id for r in ReaderRegistry(self.state.database).readers()
                    if r.pseudonym == pseudonym)

    def import_one(self, ds, records: dict, reader: str) -> SegImport | None:
        """Import one SEG as ``reader``'s read (a pseudonym radlabel vouches for, never the SEG's own claim)."""
        known = self._known(ds, records)
        if known is None or known[2] is not None:
            return known and known[2]
        seg_key, record, _ = known
        task = self.ls.tasks.get(id=record.task_id)
        pseudo_uids = task.data["sop_instance_uids"]
        # The SEG may reference the research copy (pseudonymous UIDs) or the source series.
        seg_uids = {str(item.ReferencedSOPInstanceUID) for s in ds.ReferencedSeriesSequence
                    for item in s.ReferencedInstanceSequence}
        if seg_uids & set(pseudo_uids):
            order = pseudo_uids
        else:
            by_pseudo = {self.deid.uid(uid): uid for uid in seg_uids}
            order = [by_pseudo.get(uid, "") for uid in pseudo_uids]
        result = SegImport(seg_key, task.id, None, reader=reader)
        try:
            segments = seg_codec.decode(ds, order)
        except Exception as exc:  # one SEG we cannot read must not stop the import of the others
            result.outcome = f"not imported: the SEG cannot be decoded ({type(exc).__name__})"
            audit_log(self.settings).append("seg_import", result.reader, f"{self.protocol.id} {self.protocol.version}",
                                                   task=task.id, seg=seg_key, outcome="undecodable")
            self.imported.add(seg_key, task.id, None)  # looked at once, not at every sync
            return result
        masks, result.skipped_segments = seg_codec.class_masks(segments, self.protocol)
        result.regions = len(mask_regions(masks))
        if not result.regions:  # nothing of this protocol in it: no empty annotation
            result.outcome = "no segment of this protocol"
            return result
        # vouched: the admin named the reader
        annotation_id = store_read(self.settings, self.ls, task.id, self._reader_user(result.reader), masks, "seg-import",
                                   self.protocol)
        result.annotation_id = annotation_id
        audit_log(self.settings).append("seg_import", result.reader, f"{self.protocol.id} {self.protocol.version}",
                                        task=task.id, annotation=annotation_id, seg=seg_key, regions=result.regions)
        self.imported.add(seg_key, task.id, annotation_id)
        return result
