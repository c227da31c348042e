"""STOW-RS of a 300-slice 512x512 CT to a real Orthanc: radlabel's client vs plain dicomweb-client.

Runs alternate (ours, theirs, ours, ...) and the series is deleted between
runs, so both store into the same empty Orthanc. Prints one JSON line.
"""

from __future__ import annotations

import sys
from pathlib import Path

import requests
from dicomweb_client.api import DICOMwebClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_args, report, scratch_orthanc, timed  # noqa: E402

from connectors.dicomweb import OrthancDicomWeb  # noqa: E402
from radlabel.phantom import make_ct_study  # noqa: E402


def main() -> None:
    args = bench_args(__doc__)
    study = make_ct_study(seed=11, slices=args.slices)
    with scratch_orthanc() as settings:
        password = settings.secrets()["orthanc_password"]
        auth = (settings.orthanc_user, password)
        admin = ("admin", settings.secrets()["orthanc_admin_password"])  # only the administrator may delete

        def wipe():
            for study_id in requests.get(settings.url("orthanc") + "/studies", auth=admin, timeout=30).json():
                requests.delete(settings.url("orthanc") + f"/studies/{study_id}", auth=admin, timeout=60)

        ours_client = OrthancDicomWeb.from_settings(settings)
        plain_session = requests.Session()
        plain_session.auth = auth
        plain = DICOMwebClient(settings.dicomweb_url, session=plain_session, timeout=600)

        def ours():
            result = ours_client.store(study.datasets)
            assert len(result.stored) == args.slices and not result.failed

        def theirs():
            reply = plain.store_instances(study.datasets)
            assert len(reply.ReferencedSOPSequence) == args.slices

        ours_times, theirs_times = [], []
        wipe()
        timed(ours)  # warm-up (Orthanc's first writes create its index)
        for _ in range(args.runs):
            wipe()
            ours_times.append(timed(ours))
            wipe()
            theirs_times.append(timed(theirs))
        report("stow_300_slices", ours_times, theirs_times, "radlabel_client", "dicomweb_client",
               slices=args.slices, instances_per_s_radlabel=round(args.slices / min(ours_times), 1),
               batch=ours_client.stow_batch, workers=ours_client.stow_workers)


if __name__ == "__main__":
    main()
