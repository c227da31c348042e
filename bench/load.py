"""Load: sync and adjudicate N small synthetic studies on the scale profile with 1, then 2 workers.

Each run gets a fresh stack (Redis + RQ workers) in a temporary state directory, loopback only.
N studies (4 slices of 48x48, one lung nodule) go into Orthanc; sync runs one job per series on
the workers; two simulated readers' reads are saved per task; one adjudication job per task makes
it final. Figures per worker count: studies/s for sync and for adjudication, whether anything was
lost or doubled (tasks, final decisions, final SEGs), and every service's peak memory (for the
workers the RQ parent process; each job runs in a forked work horse). Adjudication throughput is measured from
the first read saved to the last task final (webhooks and queued jobs racing, as in production). The ratio is
the 2-worker throughput over the 1-worker throughput. Default N=100 (bounded); --studies 1000 for
the full load. ``--adjudicate M`` saves reads on the first M tasks only: adjudication is bound by
Label Studio's API (one process; each final task costs about a dozen requests), 0.26 tasks/s here
with one worker, so 1,000 adjudications would take over an hour per worker count on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import scratch_stack  # noqa: E402


def peak_memory_mb(settings) -> dict[str, float]:
    """Peak resident memory (VmHWM) of every service's main process: bounded means these stay flat
    as N grows (each job runs in a forked work horse that ends with the job)."""
    out = {}
    for pid_file in sorted(settings.run.glob("*.pid")):
        pid = json.loads(pid_file.read_text())["pid"]
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                out[pid_file.stem] = round(int(line.split()[1]) / 1024, 1)
    return out


def run(studies: int, workers: int, adjudicated: int | None = None) -> dict:
    import yaml

    from connectors.adjudicate import Adjudicator
    from connectors.database import state_database
    from connectors.dicomweb import OrthancDicomWeb
    from connectors.job_handlers import job_queue
    from connectors.label_studio import client
    from connectors.provision import Provisioner
    from connectors.sync import Syncer
    from connectors.authorship import post_read
    from radlabel.brush_rle import mask_regions
    from radlabel.phantom import make_ct_study
    from radlabel.protocol import parse_template

    with scratch_stack(RADLABEL_PROFILE="scale", RADLABEL_WORKERS=str(workers)) as settings:
        data = yaml.safe_load((Path(__file__).resolve().parent.parent / "protocol_templates" /
                               "ct-lung-nodules.yaml").read_text())
        data["id"] = "load_test"
        data["selection"].update({"series_description": "^load test$", "min_slices": 2})
        protocol = parse_template(yaml.safe_dump(data))
        Provisioner(settings).provision(protocol)
        orthanc = OrthancDicomWeb.pacs_loader(settings)  # the hospital's studies arrive in the PACS
        truth = {}

        def load(seed: int) -> None:
            study = make_ct_study(seed=10_000 + seed, slices=4, size=48, pixel_spacing=8.0, slice_spacing=2.0,
                                  lung_nodules=1, liver_lesions=0)
            for ds in study.datasets:
                ds.SeriesDescription = "load test"
            if orthanc.store(study.datasets).failed:
                raise RuntimeError(f"Orthanc refused study {seed}")
            truth[study.series_uid] = {"lung_field": study.labelmap == 3, "solid_nodule": study.labelmap == 7}

        with ThreadPoolExecutor(4) as pool:  # loading is set-up, not measured
            list(pool.map(load, range(studies)))
        syncer = Syncer(settings, protocol)
        started = time.perf_counter()
        summary = syncer.run()
        sync_s = time.perf_counter() - started
        ls = client(settings)
        readers = [ls.users.create(email=f"load-{n}@readers.radlabel.local", username=f"load-{n}").id for n in (1, 2)]
        by_key = {syncer.series_key(uid): masks for uid, masks in truth.items()}
        project = syncer.project_id()
        tasks = [(s["task_id"], by_key[s["series_key"]]) for s in summary.series][:adjudicated or None]

        def finals() -> tuple[int, int]:
            with state_database(settings).connect() as db:
                return db.execute("SELECT COUNT(*), COUNT(DISTINCT seg_sop_uid) FROM adjudications "
                                  "WHERE protocol_id='load_test' AND status='final'").fetchone()

        # Reads saved -> webhooks -> hooks server -> adjudication jobs on the workers -> final SEG in Orthanc.
        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:  # readers save concurrently, as a team does
            list(pool.map(lambda item: [post_read(settings, ls, item[0], r, mask_regions(item[1]), "simulated")
                                        for r in readers], tasks))
        queue = job_queue(settings)  # a job per task as well, as a reconcile would: each key has one effect
        results = queue.wait([queue.submit("adjudicate", f"adjudicate:{task_id}:2-reads", project_id=project,
                                           task_id=task_id) for task_id, _ in tasks])
        deadline = time.monotonic() + max(600, 3 * studies)
        while finals()[0] < len(tasks) and time.monotonic() < deadline:
            time.sleep(0.5)
        adjudicate_s = time.perf_counter() - started
        Adjudicator(settings).reconcile(protocol.id)  # must find nothing left to do
        final = finals()
        all_tasks = list(ls.tasks.list(project=project, fields="all", page_size=100))
        segs = OrthancDicomWeb.from_settings(settings).search_series(Modality="SEG")  # final SEGs: research archive
        return {"workers": workers, "studies": studies, "adjudicated": len(tasks), "synced": summary.synced,
                "tasks": len(all_tasks), "distinct_series_in_tasks": len({t.data["series"] for t in all_tasks}),
                "final": final[0], "distinct_final_segs": final[1], "seg_series_in_orthanc": len(segs),
                "job_errors": sum(1 for _, error in results if error),
                "sync_studies_per_s": round(studies / sync_s, 2),
                "reads_to_final_studies_per_s": round(len(tasks) / adjudicate_s, 3),
                "peak_memory_mb": peak_memory_mb(settings)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=100)
    parser.add_argument("--adjudicate", type=int, default=None, help="save reads on the first M tasks only")
    args = parser.parse_args()
    one, two = run(args.studies, 1, args.adjudicate), run(args.studies, 2, args.adjudicate)
    for figures in (one, two):
        print(json.dumps({"benchmark": "load"} | figures))
    result = {"benchmark": "load_scale_out", "studies": args.studies, "adjudicated": one["adjudicated"],
              "sync_speedup_2_over_1_workers": round(two["sync_studies_per_s"] / one["sync_studies_per_s"], 3),
              "adjudication_speedup_2_over_1_workers": round(two["reads_to_final_studies_per_s"] /
                                                             one["reads_to_final_studies_per_s"], 3),
              "lost_or_doubled": any(f["tasks"] != f["studies"] or f["final"] != f["adjudicated"] or
                                     f["distinct_final_segs"] != f["adjudicated"] or
                                     f["distinct_series_in_tasks"] != f["studies"] or
                                     f["seg_series_in_orthanc"] != f["adjudicated"] for f in (one, two))}
    print(json.dumps(result))
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "load.json").write_text(json.dumps({"runs": [one, two], "summary": result}, indent=1))
