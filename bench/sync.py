"""A 512x512x300 CT from Orthanc to a ready Label Studio task vs the bare WADO-RS retrieval of it.

Ours: retrieve, validate (every slice decoded), OCR sample, de-identify, STOW the research copy,
render every slice in the protocol's presets, create the task. Theirs: dicomweb-client
retrieving the same series. Alternating runs on fresh series; goal <= 1.5x.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_args, report, scratch_stack, timed  # noqa: E402

from connectors.dicomweb import OrthancDicomWeb  # noqa: E402
from connectors.provision import Provisioner  # noqa: E402
from connectors.sync import Syncer  # noqa: E402
from radlabel.phantom import make_ct_study  # noqa: E402
from radlabel.protocol import load_template  # noqa: E402

TEMPLATE = Path(__file__).resolve().parent.parent / "protocol_templates" / "ct-liver-lesions.yaml"


def main() -> None:
    args = bench_args(__doc__)
    protocol = load_template(TEMPLATE)
    with scratch_stack() as settings:
        Provisioner(settings).provision(protocol)
        orthanc = OrthancDicomWeb.pacs_loader(settings)  # the source series live in the PACS
        syncer = Syncer(settings, protocol)
        ours, theirs = [], []
        for run in range(args.runs + 1):
            study = make_ct_study(seed=100 + run, slices=args.slices)
            assert not orthanc.store(study.datasets).failed
            theirs_time = timed(lambda: orthanc.client.retrieve_series(study.study_uid, study.series_uid,
                                                                     media_types=(("application/dicom", "*"),)))
            record = {}
            ours_time = timed(lambda: record.update(syncer.sync_series(study.study_uid, study.series_uid)))
            assert record["status"] == "done" and record["frames"] == args.slices
            if run:  # the first pair warms caches (OCR model, Orthanc index)
                ours.append(ours_time)
                theirs.append(theirs_time)
        result = report("sync_300_slices_to_task", ours, theirs, "radlabel_sync", "bare_wado_rs",
                        slices=args.slices, presets=len(protocol.window_presets))
        result["ratio_sync_over_wado"] = round(statistics.median(ours) / statistics.median(theirs), 2)
        print(f'{{"benchmark": "sync_300_slices_to_task", "ratio_sync_over_wado": {result["ratio_sync_over_wado"]}, "goal": 1.5}}')


if __name__ == "__main__":
    main()
