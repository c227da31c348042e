"""Orthanc SEG → Label Studio: readers' DICOM-SEGs become annotations of the synced task.

A SEG (from OHIF readers, for example) that references a synced series —
its research copy, or the source series it came from — is imported into
that series' task as the reader's annotation: each segment mapped to its
protocol class (by segment label, display name, or segmented property type),
3-D masks turned into per-slice brush RLE with the slice's ``item_index``,
attributed to a Label Studio user for the reader's pseudonym. Each SEG is
imported once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from connectors.adjudicate import CONSENSUS_CREATOR
from connectors.database import state_database
from connectors.label_studio import label_studio_errors
from connectors.sync import Syncer
from radlabel import seg as seg_codec
from radlabel.audit import audit_log
from radlabel.brush_rle import mask_regions
from radlabel.protocol.enum import Geometry

READER_DOMAIN = "readers.radlabel.local"


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


# SEGs already turned into Label Studio annotations (by this import or by the readers' API delivery).
IMPORTED_SEGS_SCHEMA = ("CREATE TABLE IF NOT EXISTS imported_segs (seg_key TEXT PRIMARY KEY, task_id INTEGER,"
                        " annotation_id INTEGER)")


class SegImporter:
    def __init__(self, syncer: Syncer):
        self.syncer = syncer
        self.protocol = syncer.protocol
        self.ls = syncer.ls
        self.database = state_database(syncer.settings)
        self.database.ensure(IMPORTED_SEGS_SCHEMA)

    def _done(self, seg_key: str):
        with self.database.connect() as db:
            return db.execute("SELECT task_id, annotation_id FROM imported_segs WHERE seg_key=?", (seg_key,)).fetchone()

    def run(self) -> list[SegImport]:
        records = {r.pseudo_series_uid: r for r in self.syncer.state.all(self.protocol.id) if r.status == "done"}
        if not records:
            return []
        results = []
        client = self.syncer.client
        for row in client.search_series(Modality="SEG"):
            study_uid, series_uid = row["0020000D"]["Value"][0], row["0020000E"]["Value"][0]
            for ds in client.retrieve_series(study_uid, series_uid):
                result = self.import_one(ds, records)
                if result:
                    results.append(result)
        return results

    def _class_for(self, label: str, type_code: str):
        label_lower = label.lower()
        for cls in self.protocol.classes:
            if label_lower in (cls.name, cls.display_name.lower()):
                return cls
        by_type = [c for c in self.protocol.classes if c.type.value == type_code]
        return by_type[0] if len(by_type) == 1 else None

    def reader_pseudonym(self, name: str) -> str:
        from connectors.readers import pseudonym_from_name

        pseudonym = pseudonym_from_name(name)  # reader-<id> or reader-<id>^: already a pseudonym
        if pseudonym:
            return pseudonym
        if name.startswith("reader-"):
            return name
        return "reader-" + self.syncer.deid.digest("reader", name).hex()[:10]

    def _reader_user(self, pseudonym: str) -> int:
        from connectors.readers import ReaderRegistry

        # A registered reader (OHIF sign-in) writes reader-<Label Studio user id>: that user, not a new one.
        for reader in ReaderRegistry.from_settings(self.syncer.settings).readers():
            if reader.pseudonym == pseudonym:
                return reader.ls_user_id
        email = f"{pseudonym}@{READER_DOMAIN}"
        with label_studio_errors(f"find or create the user of {pseudonym}"):
            for user in self.ls.users.list():
                if user.email == email:
                    return user.id
            return self.ls.users.create(email=email, username=pseudonym).id

    def import_one(self, ds, records: dict) -> SegImport | None:
        if str(ds.get("ContentCreatorName", "")) == CONSENSUS_CREATOR:
            return None  # our own final SEGs are results, not readers' reads
        seg_key = self.syncer.deid.digest("seg", str(ds.SOPInstanceUID)).hex()[:24]
        referenced = str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID) if "ReferencedSeriesSequence" in ds else ""
        record = records.get(referenced) or records.get(self.syncer.deid.uid(referenced))
        if record is None:
            return None  # not a series of this protocol
        done = self._done(seg_key)
        if done:
            return SegImport(seg_key, done[0], done[1], outcome="already imported")
        task = self.ls.tasks.get(id=record.task_id)
        pseudo_uids = task.data["sop_instance_uids"]
        # The SEG may reference the research copy (pseudonymous UIDs) or the source series.
        seg_uids = {str(item.ReferencedSOPInstanceUID) for s in ds.ReferencedSeriesSequence
                    for item in s.ReferencedInstanceSequence}
        if seg_uids & set(pseudo_uids):
            order = pseudo_uids
        else:
            by_pseudo = {self.syncer.deid.uid(uid): uid for uid in seg_uids}
            order = [by_pseudo.get(uid, "") for uid in pseudo_uids]
        result = SegImport(seg_key, task.id, None, reader=self.reader_pseudonym(str(ds.get("ContentCreatorName", "") or "")))
        masks: dict[str, np.ndarray] = {}
        try:
            segments = seg_codec.decode(ds, order)
        except Exception as exc:  # one SEG we cannot read must not stop the import of the others
            result.outcome = f"not imported: the SEG cannot be decoded ({type(exc).__name__})"
            audit_log(self.syncer.settings).append("seg_import", result.reader, f"{self.protocol.id} {self.protocol.version}",
                                                   task=task.id, seg=seg_key, outcome="undecodable")
            with self.database.connect() as db:  # looked at once, not at every sync
                db.execute("INSERT INTO imported_segs VALUES (?,?,?) ON CONFLICT DO NOTHING", (seg_key, task.id, None))
            return result
        for segment in segments:
            cls = self._class_for(segment.label, segment.type_code)
            if cls is None or Geometry.MASK not in cls.geometry:
                result.skipped_segments.append(segment.label)
                continue
            masks[cls.name] = masks[cls.name] | segment.mask if cls.name in masks else segment.mask
        regions = mask_regions(masks)
        result.regions = len(regions)
        if not regions:  # nothing of this protocol in it: no empty annotation
            result.outcome = "no segment of this protocol"
            return result
        user_id = self._reader_user(result.reader)
        with label_studio_errors(f"store the imported SEG in task {task.id}"):
            annotation = self.ls.annotations.create(id=task.id, result=regions, completed_by=user_id)
        result.annotation_id = annotation.id
        audit_log(self.syncer.settings).append("seg_import", result.reader, f"{self.protocol.id} {self.protocol.version}",
                                               task=task.id, annotation=annotation.id, seg=seg_key, regions=result.regions)
        with self.database.connect() as db:
            db.execute("INSERT INTO imported_segs VALUES (?,?,?)", (seg_key, task.id, annotation.id))
        return result
