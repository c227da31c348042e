"""The real delivery steps of a reader's SEG: STOW-RS to Orthanc, then the Label Studio annotation.

The import maps segments to protocol classes by label (the extension names segments after the
classes), turns masks into per-slice brush regions and records the SEG in ``imported_segs`` — the
table ``radlabel sync``'s importer checks — so the SEG is never imported twice.
"""

from __future__ import annotations

from pathlib import Path

from pydicom import dcmread

from connectors.database import state_database
from connectors.viewer.outbox import Outbox, Submission
from connectors.viewer.timing import seg_reading_time
from radlabel.errors import RadlabelError
from radlabel.settings import Settings


def stow(settings: Settings, path: Path) -> None:
    from connectors.dicomweb import OrthancDicomWeb

    result = OrthancDicomWeb.from_settings(settings, timeout=60).store([dcmread(path)])
    if result.failed or not result.stored:
        raise RadlabelError("Orthanc did not store the SEG: see the Orthanc log.")


def import_into_task(settings: Settings, submission: Submission, path: Path) -> int:
    """The SEG as the reader's annotation of the task; the annotation id."""
    from connectors.label_studio import client, label_studio_errors
    from connectors.provision import load_provisioned
    from radlabel import seg as seg_codec
    from radlabel.audit import audit_log
    from radlabel.brush_rle import mask_regions
    from radlabel.protocol.enum import Geometry

    from connectors.seg_import import IMPORTED_SEGS_SCHEMA

    database = state_database(settings)
    database.ensure(IMPORTED_SEGS_SCHEMA)
    with database.connect() as db:
        done = db.execute("SELECT annotation_id FROM imported_segs WHERE seg_key=?", (submission.seg_key,)).fetchone()
    if done:
        return done[0]
    protocol = load_provisioned(settings, submission.protocol.split()[0])
    ls = client(settings)
    with label_studio_errors(f"read task {submission.task_id}"):
        task = ls.tasks.get(id=submission.task_id)
    seg = dcmread(path)
    masks = {}
    mask_classes = {c.name for c in protocol.classes_with(Geometry.MASK)}
    for segment in seg_codec.decode(seg, list(task.data["sop_instance_uids"])):
        if segment.label in mask_classes:
            masks[segment.label] = masks[segment.label] | segment.mask if segment.label in masks else segment.mask
    regions = mask_regions(masks)
    from connectors.authorship import post_read

    with label_studio_errors(f"store the reader's SEG in task {submission.task_id}"):  # vouched: the API checked the reader
        timing = seg_reading_time(seg)  # lead time on the annotation, as Label Studio's own editor records it
        annotation_id = post_read(settings, ls, submission.task_id, submission.reader, regions, "ohif",
                                  **({"lead_time": timing["lead_time_s"]} if timing else {}))
    with database.connect() as db:
        db.execute("INSERT INTO imported_segs VALUES (?,?,?) ON CONFLICT DO NOTHING",
                   (submission.seg_key, submission.task_id, annotation_id))
    audit_log(settings).append("seg_import", f"reader-{submission.reader}", submission.protocol, task=submission.task_id,
                               annotation=annotation_id, seg=submission.seg_key, regions=len(regions), source="ohif")
    return annotation_id


def default_outbox(settings: Settings) -> Outbox:
    return Outbox(settings.home, state_database(settings), lambda path: stow(settings, path),
                  lambda submission, path: import_into_task(settings, submission, path))
