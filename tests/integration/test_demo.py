"""The demo runs the whole pipeline that exists, on the session's stack."""

import json

from connectors.samples import SampleSizes
from radlabel.demo import run_demo


def test_demo_runs_every_stage_and_reports_urls(stack, capsys):
    # 26 MR slices of 4 mm: 104 mm of head, enough to show a face (and so to be defaced)
    assert run_demo(as_json=True, progress=lambda message: None, sizes=SampleSizes(ct_slices=24, mr_slices=26,
                                                                                         ct_studies=2, mr_studies=2)) == 0
    summary = json.loads(capsys.readouterr().out)
    stages = [s["stage"] for s in summary["stages"]]
    assert stages == ["stack up", "samples into the PACS (STOW-RS)", "queried back over QIDO-RS",
                      "protocols provisioned into Label Studio",
                      "sync: PACS -> de-identified research copies -> Label Studio tasks",
                      "adjudication: agreement, consensus, final DICOM-SEG",
                      "ML pre-labels requested by Label Studio",
                      "training export and audit check",
                      "QA campaign: calibration, hidden gold, drift alert, QA report",
                      "reader registered (one token for OHIF and the Label Studio editor gateway); "
                      "an assisted liver click",
                      "trust boundary probed (an outsider, a reader, each archive user)",
                      "arbitration: two readers disagree, the senior's OHIF worklist offers the task"]
    assert {p["protocol_id"] for p in summary["stages"][3]["projects"]} >= {"ct_lung_nodules", "spine_landmarks"}
    sync = summary["stages"][4]["sync"]
    assert set(sync) == {"ct_liver_lesions", "ct_lung_nodules", "mr_brain_tumour"}
    assert sum(r["synced"] + r["already_done"] for r in sync.values()) >= 1
    # linkage measured over what each protocol released (sync's register): every released series counted
    for result in sync.values():
        done = sum(1 for s in result["series"] if s["status"] == "done")
        linkage = result["linkage"]
        assert linkage["series"] >= done and 0 <= linkage["unique_series"] <= linkage["series"]
    # no released series of the demo is unique on its linking values (shifted dates link nothing; scanner model and
    # software are device identity; the shape is measured in bands; two synthetic studies of a kind share a class).
    # The real CT is alone in the liver protocol's class (Siemens, PARTIALBODY): the liver template's
    # max_linkage_risk 0.5 holds it (README: De-identification, linkage). Lung 0 of 2, brain 0 of 2.
    for result in sync.values():
        assert result["unique_sources"] == [] and result["linkage"]["unique_series"] == 0
    liver = sync["ct_liver_lesions"]
    assert liver["held_for_linkage_sources"] == ["totalseg-ct-20"] and liver["linkage"]["held_for_linkage"] >= 1
    held = [s for s in liver["series"] if "linkage_risk" in (s.get("reasons") or [])]
    assert held and all(s["status"] == "held" and s["task_id"] is None for s in held)
    assert liver["linkage"]["series"] >= 2  # its two synthetic CTs, one class
    for protocol_id in ("ct_lung_nodules", "mr_brain_tumour"):
        assert sum(1 for s in sync[protocol_id]["series"] if s["status"] == "done") >= 2
        assert sync[protocol_id]["held_for_linkage_sources"] == []
    # the head MR is defaced and goes to readers (the brain protocol's face_risk: deface)
    brain = [s for s in sync["mr_brain_tumour"]["series"] if s["status"] == "done"]
    assert brain and any(f["code"] == "defaced" for s in brain for f in s["flags"]) and all(s["task_id"] for s in brain)
    adjudication = summary["stages"][5]["adjudication"]
    assert adjudication["status"] in ("final", "already final") and adjudication["dice"]["lung_field"] > 0.8
    prelabels = summary["stages"][6]["prelabels"]
    assert prelabels["predictions"] >= 1 and prelabels["lung_field_dice"] > 0.9
    export = summary["stages"][7]["export"]
    assert export["cases"] >= 1 and export["audit"].startswith("intact")
    campaign = summary["stages"][8]["campaign"]
    assert sum(campaign["certified"].values()) == 3 and len(campaign["certified"]) == 4
    assert any("drifting down" in alert for alert in campaign["alerts"])
    assert campaign["report"].endswith(".html") and "<svg" in open(campaign["report"]).read()
    reader = summary["stages"][9]["reader"]
    # one click in the synthetic CT's liver, through the gateway's 3-D assist, grows the liver over its slices
    assisted = reader["assisted_liver"]
    assert assisted["preset"] == "soft_tissue" and assisted["slices"] >= 10, assisted
    assert assisted["liver_dice_vs_truth"] >= 0.9, assisted
    assert oct(__import__("os").stat(reader["token_file"]).st_mode & 0o777) == "0o600"
    boundary = summary["stages"][10]["boundary"]
    assert boundary["outsider /dicom-web/studies"] == 401 and boundary["reader /dicom-web/%2e%2e/patients"] == 404
    assert boundary["reader POST /dicom-web/studies"] == 404 and boundary["sync's PACS user STOW"] == 403
    assert boundary["gateway's archive user DELETE"] == 403 == boundary["pipeline's archive user REST /patients"]
    assert boundary["reader token on Label Studio's API"] == 401 and boundary["reader editor worklist (gateway)"] == 200
    # The demo reaches arbitration: the simulated readers disagree on the nodule, the senior's worklist offers the
    # arbitration task and the demo prints the link that opens it in OHIF.
    arbitration = summary["stages"][11]["arbitration"]
    assert arbitration["status"] == "arbitration" and arbitration["on_senior_worklist"] is True
    assert any(reason.startswith("solid_nodule:") for reason in arbitration["reasons"])
    link = summary["open"]["OHIF arbitration (senior)"]
    assert link == arbitration["link"] and link.startswith(stack.settings.url("viewer") + "/segmentation?")
    assert f"radlabelTask={arbitration['arbitration_task']}" in link
    assert summary["open"]["OHIF reader worklist (sign in with a reader token)"].endswith("/")
    # No link names a source study (only the research copy's pseudonymous UIDs): the PACS stand-in is listed for its
    # administrator only.
    from connectors.dicomweb import OrthancDicomWeb

    source_studies = [row["0020000D"]["Value"][0] for row in OrthancDicomWeb.source_pacs(stack.settings).search_studies()]
    assert source_studies and not any(uid in url for uid in source_studies for url in summary["open"].values())
    assert not any(value in json.dumps(summary) for value in stack.secrets.values())
