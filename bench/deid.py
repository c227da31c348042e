"""De-identification throughput: radlabel's PS3.15 pass vs Orthanc's own /anonymize, same series.

Orthanc's /series/{id}/anonymize reads, rewrites and stores a copy server-side. We compare it, in
alternating runs, with radlabel's path to the same end state:
(a) our de-identification of the instances already in memory, as read from DICOM files (sync reads its sources
    from the PACS: elements it keeps stay in their encoded form);
(b) that plus the STOW-RS of the copies into the same Orthanc, as sync stores them
    (``OrthancDicomWeb.store``: batches sent as they fill, over the client's kept-alive STOW sessions,
    so de-identifying the next batch overlaps Orthanc storing the last);
(c) the whole path from the archive: WADO-RS retrieval streamed instance by instance, de-identified as
    each arrives (elements kept as they are stay encoded), STOW-RS as in (b).
Goal >= 1x for (b) and (c). Prints one JSON line per comparison, instances per second for both sides.
"""

from __future__ import annotations

import io
import statistics
import sys
from pathlib import Path

import pydicom
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_args, report, scratch_orthanc, timed  # noqa: E402

from connectors.dicomweb import OrthancDicomWeb  # noqa: E402
from radlabel.dicom_files import part10_bytes  # noqa: E402
from radlabel.ingest.deid import Deidentifier  # noqa: E402
from radlabel.phantom import make_ct_study  # noqa: E402
from radlabel.protocol.enum import DeidentificationOption as Option  # noqa: E402


def main() -> None:
    args = bench_args(__doc__)
    study = make_ct_study(seed=7, slices=args.slices)
    for ds in study.datasets:
        ds.preamble = b"\x00" * 128  # as STOW-RS sends them
    as_read = [pydicom.dcmread(io.BytesIO(part10_bytes(ds))) for ds in study.datasets]
    with scratch_orthanc() as settings:
        auth = ("admin", settings.secrets()["orthanc_admin_password"])  # Orthanc's REST API: administrator only
        base = settings.url("orthanc")
        orthanc = OrthancDicomWeb.from_settings(settings)
        assert not orthanc.store(study.datasets).failed
        series_id = requests.post(base + "/tools/lookup", data=study.series_uid, auth=auth, timeout=30).json()[0]["ID"]
        runs = iter(range(10**6))

        def deid() -> Deidentifier:  # a new key each run: new UIDs, so every copy is a new series in Orthanc
            return Deidentifier(f"benchmark-key-{next(runs):018d}".encode(), [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES])

        def theirs():
            reply = requests.post(f"{base}/series/{series_id}/anonymize", json={"Force": True, "KeepPrivateTags": False},
                                  auth=auth, timeout=600)
            reply.raise_for_status()
            requests.delete(f"{base}/series/{reply.json()['ID']}", auth=auth, timeout=60)

        def stored(sources) -> None:
            copies = deid()
            result = orthanc.store(copies.deidentify(ds) for ds in sources)
            assert len(result.stored) == args.slices and not result.failed

        timed(theirs)  # warm-up
        timed(lambda: stored(orthanc.iter_series(study.study_uid, study.series_uid)))
        memory, with_stow, whole, theirs_times = [], [], [], []
        for _ in range(args.runs):
            copies = deid()
            memory.append(timed(lambda: [copies.deidentify(ds) for ds in as_read]))
            theirs_times.append(timed(theirs))
            with_stow.append(timed(lambda: stored(as_read)))
            theirs_times.append(timed(theirs))
            whole.append(timed(lambda: stored(orthanc.iter_series(study.study_uid, study.series_uid))))
        rate = {"orthanc_instances_per_s": round(args.slices / statistics.median(theirs_times))}
        for name, label, times in (("deid_in_memory_vs_orthanc_anonymize", "radlabel_deid", memory),
                                   ("deid_and_stow_vs_orthanc_anonymize", "radlabel_deid_stow", with_stow),
                                   ("retrieve_deid_stow_vs_orthanc_anonymize", "radlabel_retrieve_deid_stow", whole)):
            report(name, times, theirs_times, label, "orthanc_anonymize", slices=args.slices,
                   radlabel_instances_per_s=round(args.slices / statistics.median(times)), **rate)


if __name__ == "__main__":
    main()
