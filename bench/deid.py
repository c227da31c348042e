"""De-identification throughput: radlabel's PS3.15 pass vs Orthanc's own /anonymize, same series.

Orthanc's /series/{id}/anonymize reads, rewrites and stores a copy server-side. We compare it with
(a) our de-identification of the same 300 instances in memory, and (b) that plus the STOW-RS of the
copies into the same Orthanc (the same end state as Orthanc's call). Goal >= 1x.
"""

from __future__ import annotations

import sys
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_args, report, scratch_orthanc, timed  # noqa: E402

from connectors.dicomweb import OrthancDicomWeb  # noqa: E402
from radlabel.ingest.deid import Deidentifier  # noqa: E402
from radlabel.phantom import make_ct_study  # noqa: E402
from radlabel.protocol.enum import DeidentificationOption as Option  # noqa: E402


def main() -> None:
    args = bench_args(__doc__)
    study = make_ct_study(seed=7, slices=args.slices)
    deid = Deidentifier(b"benchmark-key-0123456789abcdef!!", [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES])
    with scratch_orthanc() as settings:
        auth = ("admin", settings.secrets()["orthanc_admin_password"])  # Orthanc's REST API: administrator only
        base = settings.url("orthanc")
        orthanc = OrthancDicomWeb.from_settings(settings)
        assert not orthanc.store(study.datasets).failed
        series_id = requests.post(base + "/tools/lookup", data=study.series_uid, auth=auth, timeout=30).json()[0]["ID"]

        def theirs():
            reply = requests.post(f"{base}/series/{series_id}/anonymize", json={"Force": True, "KeepPrivateTags": False},
                                  auth=auth, timeout=600)
            reply.raise_for_status()
            requests.delete(f"{base}/series/{reply.json()['ID']}", auth=auth, timeout=60)

        copies = []
        ours_memory, ours_stored, theirs_times = [], [], []
        timed(theirs)  # warm-up
        for _ in range(args.runs):
            ours_memory.append(timed(lambda: copies.__setitem__(slice(None), [deid.deidentify(ds) for ds in study.datasets])))
            ours_stored.append(ours_memory[-1] + timed(lambda: orthanc.store(copies)))
            theirs_times.append(timed(theirs))
        report("deid_in_memory_vs_orthanc_anonymize", ours_memory, theirs_times, "radlabel_deid", "orthanc_anonymize",
               slices=args.slices, instances_per_s=round(args.slices / min(ours_memory)))
        report("deid_and_stow_vs_orthanc_anonymize", ours_stored, theirs_times, "radlabel_deid_stow",
               "orthanc_anonymize", slices=args.slices)


if __name__ == "__main__":
    main()
