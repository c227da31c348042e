"""``radlabel demo``: the whole pipeline that exists, on the embedded default stack.

Stages so far: 1. stack up  2. samples into Orthanc  3. check them over QIDO-RS
4. protocol templates linted and provisioned as Label Studio projects
5. sync: series selected per protocol, validated, de-identified, rendered, turned into tasks.
Each later capability appends its stage here, so the demo always shows the
pipeline end to end.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from connectors.dicomweb import OrthancDicomWeb
from connectors.samples import SampleSizes, load_samples
from connectors.provision import Provisioner
from connectors.stack import Stack
from connectors.sync import Syncer
from radlabel.errors import RadlabelError
from radlabel.protocol import load_template
from radlabel.settings import load_settings


TEMPLATES = Path(__file__).resolve().parent.parent / "protocol_templates"
DEMO_SYNC = ["ct-liver-lesions.yaml", "ct-lung-nodules.yaml", "mr-brain-tumour.yaml"]


def run_demo(as_json: bool = False, progress: Callable[[str], None] = print, sizes: SampleSizes = SampleSizes()) -> int:
    settings = load_settings()
    summary: dict = {"state_directory": str(settings.home), "stages": []}

    def stage(name: str, started: float, **details) -> None:
        summary["stages"].append({"stage": name, "seconds": round(time.monotonic() - started, 2), **details})
        progress(f"[{len(summary['stages'])}] {name}: done in {time.monotonic() - started:.1f} s")

    started = time.monotonic()
    states = Stack(settings).up(progress)
    stage("stack up", started, services={s.name: s.state for s in states})

    started = time.monotonic()
    loaded = load_samples(settings, sizes, progress=progress)
    stage("samples into Orthanc (STOW-RS)", started, series=[s.as_dict() for s in loaded])

    started = time.monotonic()
    client = OrthancDicomWeb.from_settings(settings)
    found = []
    for series in loaded:
        hits = client.search_series(series.study_uid, SeriesInstanceUID=series.series_uid)
        instances = client.search_instances(series.study_uid, series.series_uid)
        if not hits or len(instances) != series.instances:
            raise RadlabelError(f"series from {series.source} is not complete over QIDO-RS "
                                f"({len(instances)} of {series.instances} instances): see the Orthanc log.")
        found.append({"source": series.source, "instances": len(instances)})
    stage("queried back over QIDO-RS", started, series=found)

    started = time.monotonic()
    templates = sorted(TEMPLATES.glob("*.yaml"))
    provisioner = Provisioner(settings, progress)
    provisioned = [provisioner.provision(load_template(path)) for path in templates]
    stage("protocols provisioned into Label Studio", started,
          projects=[r.as_dict() for r in provisioned])

    started = time.monotonic()
    synced = {}
    for name in DEMO_SYNC:
        protocol = load_template(TEMPLATES / name)
        synced[protocol.id] = Syncer(settings, protocol, progress).run().as_dict()
    stage("sync: Orthanc -> de-identified research copies -> Label Studio tasks", started, sync=synced)

    viewer = settings.url("viewer")
    summary["open"] = {
        "OHIF viewer (study list)": viewer + "/",
        **{f"OHIF: {s.source}": f"{viewer}/viewer?StudyInstanceUIDs={s.study_uid}" for s in loaded},
        "Label Studio": settings.url("label_studio") + f"  (user {settings.label_studio_user}, "
                        f"password in {settings.secrets_file})",
        **{f"Label Studio: {r.protocol_id} {r.version}": r.url for r in provisioned},
        "Orthanc": settings.url("orthanc") + f"/app/explorer.html  (user {settings.orthanc_user}, "
                   f"password in {settings.secrets_file})",
    }
    if as_json:
        print(json.dumps(summary, indent=2))
        return 0
    print("\nradlabel demo — what ran:")
    for number, item in enumerate(summary["stages"], 1):
        print(f"  {number}. {item['stage']} ({item['seconds']} s)")
    print("\nSeries in Orthanc:")
    for series in loaded:
        print(f"  - {series.source}: {series.modality}, {series.stored}/{series.instances} instances stored and found")
    print("\nLabel Studio projects from protocol templates:")
    for r in provisioned:
        print(f"  - {r.protocol_id} {r.version}: project {r.project_id} ({r.action})")
    print("\nSync (validate, de-identify, render, task):")
    for protocol_id, result in synced.items():
        print(f"  - {protocol_id}: {result['selected']} series selected, {result['synced']} synced, "
              f"{result['already_done']} already done, {result['quarantined']} quarantined, {result['held']} held")
        for series in result["series"]:
            flags = ", ".join(f["code"] for f in series["flags"] if f["code"] != "deidentified")
            print(f"      series {series['series_key']}: {series['status']}"
                  + (f", task {series['task_id']}" if series["task_id"] else "") + (f" ({flags})" if flags else ""))
    print("\nOpen:")
    for name, url in summary["open"].items():
        print(f"  {name:<38} {url}")
    print("\nStop the stack with `radlabel down`.")
    return 0
