"""``radlabel demo``: the whole pipeline that exists, on the embedded default stack.

Stages so far: 1. stack up  2. samples into Orthanc  3. check them over QIDO-RS
4. protocol templates linted and provisioned as Label Studio projects
5. sync: series selected per protocol, validated, de-identified, rendered, turned into tasks
6. adjudication: two simulated readers (registered readers saving through the Label Studio editor gateway with
   their own tokens) label the synthetic CT's lung task from its ground truth (one slightly off); agreement, STAPLE consensus, final labels in Label Studio and a DICOM-SEG in Orthanc
7. ML pre-labels: Label Studio asks the ML backend for the lung project's predictions
8. export of the lung protocol's final labels as a NIfTI training set with a manifest; the audit trail verified.
9. QA campaign: four simulated readers (two good, one poor, one drifting) calibrate on a gold standard
   and read production series with hidden gold copies; certification, drift alert, QA review sampling,
   and the HTML QA report
10. readers: a radiologist registered with a reader token for OHIF's worklist and Label Studio's editor behind
    radlabel's gateway (token in a 0600 file); their Label Studio user is sealed. Their one click inside the
    synthetic CT's liver goes to the gateway's 3-D assist as Label Studio's smart keypoints send it (Dice vs truth).
11. trust boundary probed.
12. arbitration: two simulated readers disagree on a small chest CT; the senior's OHIF worklist offers it (the link).
Each later capability appends its stage here, so the demo always shows the
pipeline end to end.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from connectors.samples import SampleSizes, load_samples
from connectors.provision import Provisioner
from connectors.stack import Stack
from connectors.sync import Syncer
from connectors.wiring import Adapters
from radlabel.errors import RadlabelError
from radlabel.protocol import load_template
from radlabel.settings import load_settings


TEMPLATES = Path(__file__).resolve().parent.parent / "protocol_templates"
DEMO_SYNC = ["ct-liver-lesions.yaml", "ct-lung-nodules.yaml", "mr-brain-tumour.yaml"]
# Two synthetic studies of each kind: a protocol's research series then share their linkage class (k = 2).
DEMO_SIZES = SampleSizes(ct_studies=2, mr_studies=2)


def run_demo(as_json: bool = False, progress: Callable[[str], None] = print, sizes: SampleSizes = DEMO_SIZES) -> int:
    settings = load_settings()
    summary: dict = {"state_directory": str(settings.home), "stages": []}

    def stage(name: str, started: float, **details) -> None:
        summary["stages"].append({"stage": name, "seconds": round(time.monotonic() - started, 2), **details})
        progress(f"[{len(summary['stages'])}] {name}: done in {time.monotonic() - started:.1f} s")

    adapters = Adapters(settings)  # every stage of the demo on one set of adapters
    ran = _data_in_stages(adapters, sizes, progress, stage)
    ran |= _loop_stages(adapters, ran["synced"], progress, stage)
    summary["open"] = _links(settings, ran)
    if as_json:
        print(json.dumps(summary, indent=2))
        return 0
    _print_summary(summary, ran)
    return 0


def _data_in_stages(adapters: Adapters, sizes: SampleSizes, progress, stage) -> dict:
    """Stages 1-5: the stack, samples into the PACS and back over QIDO-RS, protocols provisioned, sync."""
    settings = adapters.settings
    started = time.monotonic()
    states = Stack(settings).up(progress)
    progress(f"profile {settings.profile}: state database {adapters.database.where}; "
             + ("jobs on " + str(settings.workers) + " RQ workers over Redis" if settings.profile == "scale"
                else "jobs in-process (`radlabel demo --profile scale` in a new RADLABEL_HOME for PostgreSQL, Redis "
                     "and workers)"))
    stage("stack up", started, services={s.name: s.state for s in states}, profile=settings.profile)

    started = time.monotonic()
    loaded = load_samples(settings, sizes, progress=progress, pacs=adapters.hospital_pacs)
    stage("samples into the PACS (STOW-RS)", started, series=[s.as_dict() for s in loaded])

    started = time.monotonic()
    client = adapters.source_pacs  # as sync sees it: read-only
    found = []
    for series in loaded:
        hits = client.search_series(series.study_uid, SeriesInstanceUID=series.series_uid)
        instances = client.search_instances(series.study_uid, series.series_uid)
        if not hits or len(instances) != series.instances:
            raise RadlabelError(f"series from {series.source} is not complete over QIDO-RS "
                                f"({len(instances)} of {series.instances} instances): see the PACS log.")
        found.append({"source": series.source, "instances": len(instances)})
    stage("queried back over QIDO-RS", started, series=found)

    started = time.monotonic()
    templates = sorted(TEMPLATES.glob("*.yaml"))
    provisioner = Provisioner(settings, progress, ls=adapters.label_studio)
    provisioned = [provisioner.provision(load_template(path)) for path in templates]
    stage("protocols provisioned into Label Studio", started,
          projects=[r.as_dict() for r in provisioned])

    started = time.monotonic()
    synced = {}
    for name in DEMO_SYNC:
        protocol = load_template(TEMPLATES / name)
        syncer = Syncer(settings, protocol, progress, adapters=adapters)
        synced[protocol.id] = syncer.run().as_dict()
        unique = set(synced[protocol.id]["linkage"].get("unique_series_keys", []))
        synced[protocol.id]["unique_sources"] = [s.source for s in loaded if syncer.series_key(s.series_uid) in unique]
        held = {s["series_key"] for s in synced[protocol.id]["series"] if "linkage_risk" in (s.get("reasons") or [])}
        synced[protocol.id]["held_for_linkage_sources"] = [s.source for s in loaded
                                                           if syncer.series_key(s.series_uid) in held]
    stage("sync: PACS -> de-identified research copies -> Label Studio tasks", started, sync=synced)
    return {"loaded": loaded, "provisioned": provisioned, "synced": synced}


def _loop_stages(adapters: Adapters, synced: dict, progress, stage) -> dict:
    """Stages 6-12: adjudication, ML pre-labels, export, the QA campaign, an OHIF reader, the trust boundary,
    arbitration offered to the senior."""
    settings = adapters.settings
    started = time.monotonic()
    adjudicated = _adjudicate_demo_task(adapters, synced.get("ct_lung_nodules", {}), progress)
    stage("adjudication: agreement, consensus, final DICOM-SEG", started,
          adjudication={k: v for k, v in adjudicated.items() if not k.startswith("_")})

    started = time.monotonic()
    prelabels = _prelabel_demo(adapters, adjudicated, progress)
    stage("ML pre-labels requested by Label Studio", started, prelabels=prelabels)

    started = time.monotonic()
    exported = _export_demo(adapters)
    stage("training export and audit check", started, export=exported)

    started = time.monotonic()
    campaign = _campaign_demo(adapters, progress)
    stage("QA campaign: calibration, hidden gold, drift alert, QA report", started, campaign=campaign)

    started = time.monotonic()
    reader = _reader_demo(adapters)
    reader["assisted_liver"] = _assist_demo(adapters, synced.get("ct_liver_lesions", {}), reader["token_file"])
    stage("reader registered (one token for OHIF and the Label Studio editor gateway); an assisted liver click",
          started, reader=reader)

    started = time.monotonic()
    stage("trust boundary probed (an outsider, a reader, each archive user)", started,
          boundary=_boundary_demo(settings, reader["token_file"]))

    started = time.monotonic()
    arbitration = _arbitration_demo(adapters, reader["token_file"], progress)
    stage("arbitration: two readers disagree, the senior's OHIF worklist offers the task", started, arbitration=arbitration)
    return {"adjudicated": adjudicated, "prelabels": prelabels, "exported": exported, "campaign": campaign,
            "reader": reader, "arbitration": arbitration}


def _links(settings, ran: dict) -> dict:
    """What to open after the demo, and with which credentials (named, never printed)."""
    viewer, reader, campaign, arbitration = settings.url("viewer"), ran["reader"], ran["campaign"], ran["arbitration"]
    return {
        "OHIF reader worklist (sign in with a reader token)": viewer + "/",
        "Label Studio editor for readers (sign in with the same reader token)": viewer + "/radlabel/editor/",
        "Label Studio": settings.url("label_studio") + f"  (user {settings.label_studio_user}, "
                        f"password in {settings.secrets_file})",
        **{f"Label Studio: {r.protocol_id} {r.version}": r.url for r in ran["provisioned"]},
        **({"QA report": campaign["report"]} if campaign.get("report") else {}),
        "OHIF reader sign-in": f"{viewer}/  (token in {reader['token_file']})",
        **({"OHIF arbitration (senior)": arbitration["link"]} if arbitration.get("link") else {}),
        # Administrators only: never a door that faces readers.
        "Orthanc research archive (administrator)": settings.url("orthanc") + "/app/explorer.html  (user admin, "
                                                    f"orthanc_admin_password in {settings.secrets_file})",
        "PACS stand-in (the hospital's, administrator)": settings.url("pacs") + "/app/explorer.html  (user "
                                                         f"{settings.pacs_admin_user}, pacs_admin_password in "
                                                         f"{settings.secrets_file})",
    }


def _print_summary(summary: dict, ran: dict) -> None:
    print("\nradlabel demo — what ran:")
    for number, item in enumerate(summary["stages"], 1):
        print(f"  {number}. {item['stage']} ({item['seconds']} s)")
    print("\nSeries in the PACS:")
    for series in ran["loaded"]:
        print(f"  - {series.source}: {series.modality}, {series.stored}/{series.instances} instances stored and found")
    print("\nLabel Studio projects from protocol templates:")
    for r in ran["provisioned"]:
        print(f"  - {r.protocol_id} {r.version}: project {r.project_id} ({r.action})")
    print("\nSync (validate, de-identify, render, task):")
    for protocol_id, result in ran["synced"].items():
        print(f"  - {protocol_id}: {result['selected']} series selected, {result['synced']} synced, "
              f"{result['already_done']} already done, {result['quarantined']} quarantined, {result['held']} held; "
              f"{result['linkage']['unique_series']} of {result['linkage']['series']} released series unique on "
              f"their quasi-identifiers and shape")
        for source in result.get("unique_sources", []):
            print(f"      unique: {source} is the only released series of its linkage class (README: "
                  "De-identification, linkage)")
        for source in result.get("held_for_linkage_sources", []):
            print(f"      held: {source} is alone in its linkage class (manufacturer, body part, shape band); the "
                  "protocol releases k >= 2, so it waits for a second series like it (README: De-identification, "
                  "linkage)")
        for series in result["series"]:
            flags = ", ".join(f["code"] for f in series["flags"] if f["code"] != "deidentified")
            print(f"      series {series['series_key']}: {series['status']}"
                  + (f", task {series['task_id']}" if series["task_id"] else "") + (f" ({flags})" if flags else ""))
    _print_loop(ran)
    print(f"\nReader {ran['reader']['email']} ({ran['reader']['tier']}) signs in to OHIF and to Label Studio's editor "
          f"({ran['reader']['label_studio_editor']}) with the token in {ran['reader']['token_file']}")
    print("\nTrust boundary (HTTP status or count each door gave):")
    for probe, answer in next(s["boundary"] for s in summary["stages"] if "boundary" in s).items():
        print(f"  - {probe}: {answer}")
    _print_arbitration(ran["arbitration"])
    print("\nOpen:")
    for name, url in summary["open"].items():
        print(f"  {name:<38} {url}")
    print("\nStop the stack with `radlabel down`.")


def _print_arbitration(arbitration: dict) -> None:
    if arbitration.get("link"):
        print(f"\nArbitration: task {arbitration['source_task']} went to senior arbitration "
              f"({'; '.join(arbitration['reasons'][:2])}); task {arbitration['arbitration_task']} is on the senior's "
              f"OHIF worklist:\n  {arbitration['link']}")
    else:  # e.g. a later run in the same state directory, after the senior arbitrated it
        print(f"\nArbitration: task {arbitration.get('source_task')} is {arbitration.get('status')}, "
              "not on the senior's worklist")


def _print_loop(ran: dict) -> None:
    adjudicated, prelabels, exported, campaign = ran["adjudicated"], ran["prelabels"], ran["exported"], ran["campaign"]
    if adjudicated:
        print("\nAdjudication (simulated readers on the lung task):")
        print(f"  - task {adjudicated['task_id']}: {adjudicated['status']}"
              + (f", final SEG {adjudicated['seg_sop_uid']}" if adjudicated.get("seg_sop_uid") else ""))
        for name, dice in adjudicated.get("dice", {}).items():
            print(f"      {name}: Dice between readers {dice}")
    if prelabels:
        print("\nML pre-labels (classical, HU space) stored by Label Studio:")
        print(f"  - {prelabels['predictions']} prediction(s) in the lung project, model {prelabels['model_version']}"
              + (f"; lung field Dice vs truth {prelabels['lung_field_dice']}" if prelabels.get("lung_field_dice") else ""))
    if exported:
        print(f"\nExport: {exported['cases']} case(s) in {exported['folder']} ({exported['splits']}); "
              f"audit trail: {exported['audit']}")
    if campaign:
        print(f"\nQA campaign ({campaign['protocol']}): {campaign['final_tasks']} final series, "
              f"{campaign['hidden_gold_copies']} hidden gold copies, {campaign['review_tasks']} sampled for QA review")
        for name, certified in campaign["certified"].items():
            print(f"  - {name}: {'certified' if certified else 'NOT certified'}")
        for alert in campaign["alerts"]:
            print(f"  ! {alert}")


def _adjudicate_demo_task(adapters: Adapters, lung_sync: dict, progress) -> dict:
    """Two readers (simulated from the phantom's ground truth) read the lung task; the loop adjudicates."""
    settings = adapters.settings
    import numpy as np
    from scipy import ndimage

    from connectors.adjudicate import Adjudicator
    from radlabel.brush_rle import mask_regions
    from radlabel.protocol.enum import Geometry
    from radlabel.protocol.labelconfig import class_targets

    protocol = load_template(TEMPLATES / "ct-lung-nodules.yaml")
    syncer = Syncer(settings, protocol, adapters=adapters)
    done = {s["series_key"]: s for s in lung_sync.get("series", []) if s["status"] == "done" and s.get("task_id")}
    # the synthetic study whose ground truth we kept, among the synced series
    truth_folder = next((p for p in sorted((settings.home / "samples").iterdir())
                         if syncer.series_key(p.name) in done), None) if (settings.home / "samples").exists() else None
    if truth_folder is None:
        return {}
    series = done[syncer.series_key(truth_folder.name)]
    labelmap = np.load(truth_folder / "truth_labelmap.npy")
    ls = adapters.label_studio
    task = ls.tasks.get(id=series["task_id"])
    if len(task.data["images"]) != labelmap.shape[0]:
        return {}
    first = {"lung_field": labelmap == 3, "solid_nodule": labelmap == 7}
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)  # one pixel off at every in-plane edge
    second = {"lung_field": ndimage.binary_erosion(first["lung_field"], structure=in_plane),
              "solid_nodule": first["solid_nodule"]}
    targets = class_targets(protocol, Geometry.MASK)
    _demo_readers_read(settings, ls, task.id, [mask_regions(m, targets=targets) for m in (first, second)], progress)
    outcome = Adjudicator(settings, progress, adapters=adapters).reconcile()  # the webhook worker may have done it already
    mine = next((o for o in outcome if o.task_id == task.id), None)
    from radlabel.adjudication.metrics import mask_agreement

    spacing = (float(task.data["slice_spacing_mm"]), *map(float, task.data["pixel_spacing_mm"]))
    dice = {name: round(mask_agreement(first[name], second[name], spacing, 1.5).dice, 4) for name in first}
    return {"task_id": task.id, "status": mine.status if mine else "unknown",
            "seg_sop_uid": mine.seg_sop_uid if mine else None, "study": task.data["study"], "dice": dice,
            "_lung_truth": first["lung_field"]}


def _demo_readers_read(settings, ls, task_id: int, reads: list[list], progress) -> None:
    """The two simulated readers, registered readers each saving their read with their own token through the
    editor gateway, as in Label Studio's editor (once: a reader who has read the task is skipped)."""
    from connectors.campaign import save_through_gateway
    from connectors.readers import register_readers

    existing = {a.completed_by for a in ls.annotations.list(id=task_id)}
    names = ("demo-reader-1", "demo-reader-2")
    registered = register_readers(settings, [(f"{name}@readers.radlabel.local", "radiologist") for name in names])
    for name, result, credentials in zip(names, reads, registered):
        if int(credentials["reader"].removeprefix("reader-")) not in existing:
            progress(f"{name} ({credentials['reader']}) submits a read of task {task_id} through the editor gateway …")
            save_through_gateway(settings, credentials["label_studio"]["token"], task_id, result)


def _arbitration_demo(adapters: Adapters, token_file: str, progress) -> dict:
    """A small chest CT into the PACS and synced by the lung protocol; one simulated reader labels the nodule where it
    is, the other misplaces it; the lung protocol sends the task to senior arbitration, and the demo senior's OHIF
    worklist (the readers' API, with the demo token) offers it: the link opens it in OHIF after sign-in."""
    settings = adapters.settings
    import numpy as np
    import requests

    from connectors.adjudicate import Adjudicator
    from radlabel.brush_rle import mask_regions
    from radlabel.phantom import make_ct_study
    from radlabel.protocol.enum import Geometry
    from radlabel.protocol.labelconfig import class_targets

    protocol = load_template(TEMPLATES / "ct-lung-nodules.yaml")
    study = make_ct_study(seed=1901, slices=24, size=128, pixel_spacing=3.0, lung_nodules=1)
    for ds in study.datasets:
        ds.SeriesDescription = "chest (arbitration demo)"
    if not adapters.source_pacs.search_series(study.study_uid, SeriesInstanceUID=study.series_uid):
        adapters.hospital_pacs.store(study.datasets)
    syncer = Syncer(settings, protocol, adapters=adapters)
    syncer.run()
    record = syncer.state.get(syncer.series_key(study.series_uid), protocol.id)
    task_id = getattr(record, "task_id", None)
    if not task_id:
        return {"status": "the demo chest CT was not synced: see `radlabel sync ct-lung-nodules.yaml`"}
    ls = adapters.label_studio
    nodule = study.labelmap == 7
    misplaced = np.roll(nodule, 14, axis=2)  # the second reader marks the wrong spot
    lungs = study.labelmap == 3
    reads = ({"lung_field": lungs, "solid_nodule": nodule}, {"lung_field": lungs & ~misplaced, "solid_nodule": misplaced})
    targets = class_targets(protocol, Geometry.MASK)
    _demo_readers_read(settings, ls, task_id, [mask_regions(m, targets=targets) for m in reads], progress)
    Adjudicator(settings, progress, adapters=adapters).reconcile()
    with adapters.database.connect() as db:
        row = db.execute("SELECT status, arbitration_task_id, decision FROM adjudications WHERE task_id=?",
                         (task_id,)).fetchone()
    status, arbitration_task, decision = row if row else (None, None, None)
    token = open(token_file).read().strip()
    worklist = requests.get(settings.url("viewer") + "/radlabel/api/worklist", timeout=120,
                            headers={"Authorization": f"Bearer {token}"}).json().get("tasks", [])
    item = next((t for t in worklist if t["task_id"] == arbitration_task and t["kind"] == "arbitration"), None)
    link = None
    if item:  # the extension's own task link (ohif_extension/src/controller.js taskUrl)
        from urllib.parse import urlencode

        link = settings.url("viewer") + "/segmentation?" + urlencode(
            {"StudyInstanceUIDs": item["study"], "SeriesInstanceUIDs": item["series"], "radlabelTask": item["task_id"]})
    return {"source_task": task_id, "status": status, "arbitration_task": arbitration_task,
            "reasons": json.loads(decision).get("reasons", []) if decision else [],
            "on_senior_worklist": item is not None, "link": link}


def _prelabel_demo(adapters: Adapters, adjudicated: dict, progress) -> dict:
    """Label Studio's 'retrieve predictions' on the lung project; the backend answers from Orthanc's pixels."""
    settings = adapters.settings
    import numpy as np
    import requests

    from radlabel.adjudication.metrics import mask_agreement
    from radlabel.brush_rle import decode

    if not adjudicated.get("task_id"):
        return {}
    ls = adapters.label_studio
    task = ls.tasks.get(id=adjudicated["task_id"])
    token = settings.secrets()["label_studio_token"]
    progress("asking Label Studio to retrieve the lung project's predictions …")
    requests.post(f"{settings.url('label_studio')}/api/dm/actions?id=retrieve_tasks_predictions&project={task.project}",
                  json={"selectedItems": {"all": False, "included": [task.id]}},
                  headers={"Authorization": f"Token {token}"}, timeout=120)
    deadline = time.monotonic() + 60
    found = []
    while time.monotonic() < deadline and not found:
        found = [p for p in ls.predictions.list(task=task.id) if p.model_version.startswith("radlabel-classical")
                 and p.result]
        time.sleep(1)
    if not found:
        return {"predictions": 0, "model_version": None}
    prediction = found[-1]
    shape = (len(task.data["images"]), int(task.data["rows"]), int(task.data["columns"]))
    lung = np.zeros(shape, bool)
    for region in prediction.result:
        if region["value"].get("brushlabels") == ["lung_field"]:
            lung[region["item_index"]] |= decode(region["value"]["rle"], shape[1], shape[2]) > 0
    truth = adjudicated.get("_lung_truth")
    spacing = (float(task.data["slice_spacing_mm"]), *map(float, task.data["pixel_spacing_mm"]))
    dice = round(mask_agreement(lung, truth, spacing, 1.5).dice, 4) if truth is not None else None
    return {"predictions": len(found), "model_version": prediction.model_version, "lung_field_dice": dice}


def _export_demo(adapters: Adapters) -> dict:
    settings = adapters.settings
    from connectors.export import export_dataset
    from radlabel.audit import audit_log

    protocol = load_template(TEMPLATES / "ct-lung-nodules.yaml")
    folder = settings.home / "exports" / f"{protocol.id}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        result = export_dataset(settings, protocol, folder, adapters=adapters)
    except RadlabelError as exc:  # nothing final yet: say so, the demo goes on
        return {"cases": 0, "folder": None, "splits": {}, "audit": str(exc)}
    check = audit_log(settings).verify()
    return {"cases": result.cases, "folder": str(result.folder), "splits": result.splits,
            "audit": f"intact, {check.entries} entries" if check.ok else f"TAMPERED: {check.problem}"}


def _campaign_demo(adapters: Adapters, progress) -> dict:
    settings = adapters.settings
    from connectors.campaign import Campaign, campaign_protocol
    from connectors.quality import QualityDesk, report_figures
    from radlabel.qa.report import render_html

    protocol = campaign_protocol()
    desk = QualityDesk.build(settings, adapters.label_studio, adapters.database, adapters.research_archive)
    if desk.gold.tasks(protocol.id):  # a second demo run in the same state directory: report what is there
        progress("QA campaign already ran in this state directory: reporting on it")
        result = None
    else:
        result = Campaign(settings, protocol, progress, adapters).run(gold=3, production=14)
    figures = report_figures(settings, protocol, desk)
    folder = settings.home / "reports"
    folder.mkdir(exist_ok=True)
    page = folder / f"{protocol.id}.html"
    page.write_text(render_html(figures))
    page.with_suffix(".json").write_text(json.dumps(figures, indent=1, default=str))
    certified = {f"reader-{c['reader']}": c["certified"] for c in figures["certifications"]}
    if result:
        certified = {f"{name} (reader-{result.reader_ids[name]})": c.certified
                     for name, c in result.certifications.items()}
    return {"protocol": protocol.id, "final_tasks": figures["counts"].get("final", 0),
            "hidden_gold_copies": figures["counts"].get("gold_copy_tasks", 0),
            "review_tasks": figures["counts"].get("review_tasks", 0), "certified": certified,
            "alerts": figures["alerts"], "report": str(page)}


def _raw_status(settings, path: str, token: str | None = None, method: str = "GET") -> int:
    """One request to the viewer front with the path sent exactly as written (no client normalisation)."""
    import http.client

    connection = http.client.HTTPConnection(settings.host, settings.ports["viewer"], timeout=60)
    connection.request(method, path, headers={"Authorization": f"Bearer {token}"} if token else {})
    status = connection.getresponse().status
    connection.close()
    return status


def _boundary_demo(settings, token_file: str) -> dict:
    """What each door answers: the figures a security review asks for first (tests prove the rest)."""
    import requests

    token = open(token_file).read().strip()
    secrets = settings.secrets()
    reader_studies = requests.get(settings.url("viewer") + "/dicom-web/studies", timeout=60,
                                  headers={"Authorization": f"Bearer {token}"})
    stow = {"Content-Type": "multipart/related; type=application/dicom"}
    return {
        "outsider /dicom-web/studies": _raw_status(settings, "/dicom-web/studies?includefield=PatientName"),
        "outsider /dicom-web/%2e%2e/patients": _raw_status(settings, "/dicom-web/%2e%2e/patients"),
        "reader /dicom-web/%2e%2e/patients": _raw_status(settings, "/dicom-web/%2e%2e/patients", token),
        "reader POST /dicom-web/studies": _raw_status(settings, "/dicom-web/studies", token, "POST"),
        "reader studies visible (own tasks only)": len(reader_studies.json()) if reader_studies.ok else reader_studies.status_code,
        # the reader's token opens radlabel's doors only: Label Studio's own API and editor gateway of others refuse it
        "reader token on Label Studio's API": requests.get(settings.url("label_studio") + "/api/projects", timeout=30,
                                                           headers={"Authorization": f"Token {token}"}).status_code,
        "reader editor worklist (gateway)": requests.get(settings.url("viewer") + "/radlabel/editor/api/worklist", timeout=60,
                                                         headers={"Authorization": f"Bearer {token}"}).status_code,
        "sync's PACS user STOW": requests.post(settings.url("pacs") + "/dicom-web/studies", data=b"", headers=stow, timeout=30,
                                               auth=(settings.pacs_sync_user, secrets["pacs_sync_password"])).status_code,
        "gateway's archive user DELETE": requests.delete(settings.url("orthanc") + "/studies/x", timeout=30,
                                                         auth=(settings.gateway_user, secrets["gateway_password"])).status_code,
        "pipeline's archive user REST /patients": requests.get(settings.url("orthanc") + "/patients", timeout=30,
                                                               auth=(settings.orthanc_user, secrets["orthanc_password"])).status_code,
    }


def _assist_demo(adapters: Adapters, liver_sync: dict, token_file: str) -> dict:
    """The demo reader's one click inside the synthetic CT's liver, sent as Label Studio's smart keypoints send it to
    the editor gateway's 3-D assist (the ML backend, server-side); the answer scored against the phantom's truth and
    not saved (the click is the reader's, the read stays theirs to make)."""
    import numpy as np
    import requests
    from scipy import ndimage

    from radlabel.brush_rle import decode
    from radlabel.protocol.labelconfig import assist_control, image_name

    settings = adapters.settings
    protocol = load_template(TEMPLATES / "ct-liver-lesions.yaml")
    syncer = Syncer(settings, protocol, adapters=adapters)
    done = {s["series_key"]: s for s in liver_sync.get("series", []) if s["status"] == "done" and s.get("task_id")}
    samples = settings.home / "samples"
    truth_folder = next((p for p in sorted(samples.iterdir()) if syncer.series_key(p.name) in done), None) \
        if samples.exists() else None
    if truth_folder is None:
        return {}
    task_id, liver = done[syncer.series_key(truth_folder.name)]["task_id"], np.load(truth_folder / "truth_labelmap.npy") == 4
    k = int(np.argmax(liver.sum(axis=(1, 2))))
    depth = ndimage.distance_transform_edt(liver[k])  # deep inside the liver, as a reader clicks
    j, i = np.unravel_index(np.argmax(depth), depth.shape)
    preset = protocol.label_class("liver").read_in
    click = {"from_name": assist_control(preset), "to_name": image_name(preset), "type": "keypointlabels",
             "item_index": k, "is_positive": True, "value": {"x": (i + 0.5) * 100 / liver.shape[2],
                                                              "y": (j + 0.5) * 100 / liver.shape[1], "keypointlabels": ["liver"]}}
    reply = requests.post(f"{settings.url('viewer')}/radlabel/editor/tasks/{task_id}/assist", json={"result": [click]},
                          headers={"Authorization": f"Bearer {open(token_file).read().strip()}"}, timeout=300)
    if reply.status_code != 200:
        return {"task": task_id, "status": reply.status_code, "error": reply.json().get("error", "")}
    grown = np.zeros(liver.shape, bool)
    for region in reply.json()["result"]:
        grown[region["item_index"]] |= decode(region["value"]["rle"], *liver.shape[1:]) > 0
    dice = 2 * np.count_nonzero(grown & liver) / max(np.count_nonzero(grown) + np.count_nonzero(liver), 1)
    return {"task": task_id, "clicked_slice": k, "preset": preset, "slices": int(grown.any(axis=(1, 2)).sum()),
            "liver_dice_vs_truth": round(float(dice), 3)}


def _reader_demo(adapters: Adapters) -> dict:
    settings = adapters.settings
    import os

    from connectors.readers import ReaderRegistry, editor_url, issue_credentials

    email, tier = "demo-radiologist@readers.radlabel.local", "senior"
    token_file = settings.home / "demo-reader.token"
    if not any(r.email == email and r.active for r in ReaderRegistry(adapters.database).readers()) or \
            not token_file.exists():
        credentials = issue_credentials(settings, email, tier, adapters=adapters)  # its Label Studio user sealed: both doors are radlabel's
        token_file.unlink(missing_ok=True)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(credentials["ohif_token"] + "\n")
    return {"email": email, "tier": tier, "token_file": str(token_file), "label_studio_editor": editor_url(settings)}
