"""The real delivery steps of a reader's SEG: STOW-RS to Orthanc, then the Label Studio annotation.

The import maps segments to protocol classes by label (the extension names segments after the
classes), turns masks into per-slice brush regions and records the SEG in ``imported_segs`` — the
table ``radlabel sync``'s importer checks — so the SEG is never imported twice.
"""

from __future__ import annotations

from pathlib import Path

from pydicom import dcmread

from connectors.ports import DicomArchive
from connectors.viewer.outbox import Outbox, Submission
from connectors.viewer.timing import seg_reading_time
from connectors.wiring import Adapters
from radlabel.errors import RadlabelError
from radlabel.settings import Settings


def stow(archive: DicomArchive, path: Path) -> None:
    result = archive.store([dcmread(path)])
    if result.failed or not result.stored:
        raise RadlabelError("Orthanc did not store the SEG: see the Orthanc log.")


def import_into_task(settings: Settings, adapters: Adapters, submission: Submission, path: Path) -> int:
    """The SEG as the reader's annotation of the task (in ``adapters.label_studio``); the annotation id."""
    from connectors.label_studio import label_studio_errors
    from connectors.projects import load_provisioned
    from connectors.seg_import import ImportedSegs, store_read
    from radlabel import seg as seg_codec
    from radlabel.audit import audit_log
    from radlabel.brush_rle import mask_regions

    imported = ImportedSegs(adapters.database)
    done = imported.get(submission.seg_key)
    if done:
        return done[1]
    protocol = load_provisioned(settings, submission.protocol.split()[0])
    ls = adapters.label_studio
    with label_studio_errors(f"read task {submission.task_id}"):
        task = ls.tasks.get(id=submission.task_id)
    seg = dcmread(path)
    segments = seg_codec.decode(seg, list(task.data["sop_instance_uids"]))
    masks, _ = seg_codec.class_masks(segments, protocol)  # the readers' API named every segment after a class
    # vouched: the API checked the reader
    timing = seg_reading_time(seg)  # lead time on the annotation, as Label Studio's own editor records it
    annotation_id = store_read(settings, ls, submission.task_id, submission.reader, masks, "ohif", protocol,
                               **({"lead_time": timing["lead_time_s"]} if timing else {}))
    imported.add(submission.seg_key, submission.task_id, annotation_id)
    audit_log(settings).append("seg_import", f"reader-{submission.reader}", submission.protocol, task=submission.task_id,
                               annotation=annotation_id, seg=submission.seg_key, regions=len(mask_regions(masks)),
                               source="ohif")
    return annotation_id


def default_outbox(settings: Settings, adapters: Adapters | None = None) -> Outbox:
    """The outbox delivering to the research archive (one STOW client with a longer timeout) and Label Studio."""
    adapters = adapters or Adapters(settings)
    archive = adapters.research_archive_with(timeout=60)
    return Outbox(settings.home, adapters.database, lambda path: stow(archive, path),
                  lambda submission, path: import_into_task(settings, adapters, submission, path))
