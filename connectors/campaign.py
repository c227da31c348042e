"""A simulated labelling campaign through the real stack: what the demo shows and the QA test checks.

Synthetic liver CTs go to Orthanc; a short-campaign variant of the liver protocol (three
calibration cases, frequent gold and QA sampling) is provisioned; a gold standard is built from
three good readers' consensus; four simulated readers of known skill — two good, one poor, one
drifting — calibrate and then read every production task, hidden gold copies included; the
adjudication loop decides; the QA figures follow from what was stored.

The simulated readers are registered readers (``radlabel readers add``): each saves its reads itself,
with its own token, through the running viewer front's Label Studio editor gateway — the route Label
Studio's editor posts to in a reader's browser — so overlap, blinding and authorship are the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from connectors.adjudicate import Adjudicator
from connectors.label_studio import label_studio_errors
from connectors.provision import Provisioner
from connectors.quality import QualityDesk
from connectors.sync import Syncer
from connectors.wiring import Adapters
from radlabel.brush_rle import mask_regions
from radlabel.errors import RadlabelError
from radlabel.phantom import make_ct_study
from radlabel.protocol import parse_template
from radlabel.protocol.enum import Geometry, ReaderTier
from radlabel.protocol.labelconfig import class_targets
from radlabel.protocol.template import Protocol
from radlabel.qa.simulate import SimulatedReader
from radlabel.settings import Settings

TEMPLATE = Path(__file__).resolve().parent.parent / "protocol_templates" / "ct-liver-lesions.yaml"
SERIES_PREFIX = "radlabel campaign"  # + the protocol id: each campaign selects only its own series
READER_DOMAIN = "readers.radlabel.local"


def campaign_protocol(gold: int = 3, protocol_id: str = "ct_liver_lesions_campaign") -> Protocol:
    """The liver template tuned for a short campaign: its own series, small calibration set, frequent QA."""
    data = yaml.safe_load(TEMPLATE.read_text())
    data["id"] = protocol_id
    data["name"] = "CT liver lesions — simulated campaign"
    data["selection"].update({"series_description": f"^{SERIES_PREFIX} {protocol_id}$", "min_slices": 8})
    data["qa"] = {"sampling_rate": 0.5, "gold_insertion_rate": 0.2, "drift_window": 8,
                  "calibration": {"cases": gold, "pass_thresholds": {"dice": 0.75}}}
    data["adjudication"] = {"method": "majority", "thresholds": {"dice": 0.5}}
    # synthetic series with a thin GE stratum by design (the QA report's warning); the gold set needs its GE series
    # at once, and the production set later joins it (k = 3 in the end)
    data["deidentification"].pop("max_linkage_risk", None)
    return parse_template(yaml.safe_dump(data, sort_keys=False), f"{TEMPLATE.name} (campaign variant)")


def truth_masks(study) -> dict[str, np.ndarray]:
    value = {name: v for v, name in study.labels.items()}
    return {"liver": np.isin(study.labelmap, [value["liver"], value["liver_lesion"]]),
            "liver_lesion": study.labelmap == value["liver_lesion"]}


def campaign_readers(gold: int) -> list[SimulatedReader]:
    """Two good readers, one drifting after its calibration and 8 production reads, one poor."""
    return [SimulatedReader("good-a", 0.08, seed=1), SimulatedReader("good-b", 0.1, seed=2),
            SimulatedReader("drifting", 0.08, seed=3, drift_after=gold + 8, drift=0.06),
            SimulatedReader("poor", 0.5, seed=4)]


@dataclass
class CampaignResult:
    protocol: Protocol
    reader_ids: dict[str, int]
    readers: list[SimulatedReader]
    gold_tasks: list[int]
    production_tasks: list[int]
    gold_copies: list[int]
    certifications: dict[str, object]
    truth: dict[str, dict] = field(repr=False, default_factory=dict)  # research series UID -> true masks

    def summary(self) -> dict:
        return {"protocol": self.protocol.id, "gold_tasks": self.gold_tasks,
                "production_tasks": len(self.production_tasks), "hidden_gold_copies": len(self.gold_copies),
                "certified": {name: c.certified for name, c in self.certifications.items()}}


def save_through_gateway(settings: Settings, token: str, task_id: int, result: list, lead_time: float | None = None) -> int:
    """Save a read as the reader holding ``token``, as Label Studio's editor does in the reader's browser: through the
    viewer front's editor gateway. The annotation id; RadlabelError with the gateway's own sentence if refused."""
    import requests

    body = {"result": result} | ({"lead_time": lead_time} if lead_time is not None else {})
    try:
        reply = requests.post(f"{settings.url('viewer')}/radlabel/editor/tasks/{task_id}/annotation", json=body,
                              headers={"Authorization": f"Bearer {token}"}, timeout=300)
    except requests.RequestException:
        raise RadlabelError(f"the viewer front did not answer at {settings.url('viewer')}: check `radlabel status`.") from None
    if reply.status_code != 201:
        try:
            reason = reply.json().get("error", "")
        except ValueError:
            reason = reply.text[:200]
        raise RadlabelError(f"the editor gateway refused a read of task {task_id} (HTTP {reply.status_code}): {reason}")
    return reply.json()["annotation_id"]


class Campaign:
    def __init__(self, settings: Settings, protocol: Protocol, progress: Callable[[str], None] = lambda m: None,
                 adapters: Adapters | None = None):
        adapters = adapters or Adapters(settings)
        self.settings, self.protocol, self.progress = settings, protocol, progress
        self.ls = adapters.label_studio
        self.pacs = adapters.hospital_pacs  # the campaign's studies arrive like the hospital's
        self.syncer = Syncer(settings, protocol, adapters=adapters)
        self.desk = QualityDesk.build(settings, self.ls, adapters.database, adapters.research_archive)
        self.adjudicator = Adjudicator(settings, adapters=adapters)
        self.truth: dict[str, dict] = {}
        self.tokens: dict[str, str] = {}  # simulated reader -> its reader token (in memory only)

    def _register(self, names: list[str]) -> dict[str, int]:
        """The simulated readers registered as radiologists (their Label Studio users sealed together): name -> id."""
        from connectors.readers import register_readers

        people = [(f"{name}@{READER_DOMAIN}", ReaderTier.RADIOLOGIST.value) for name in names]
        ids = {}
        for name, credentials in zip(names, register_readers(self.settings, people)):
            self.tokens[name] = credentials["label_studio"]["token"]
            ids[name] = int(credentials["reader"].removeprefix("reader-"))
        return ids

    def _post(self, task_id: int, reader: str, masks: dict, lead_time: float) -> None:
        regions = mask_regions(masks, targets=class_targets(self.protocol, Geometry.MASK))
        save_through_gateway(self.settings, self.tokens[reader], task_id, regions, lead_time)

    def store_and_sync(self, seeds) -> tuple[list[int], list[int]]:
        """Synthetic studies into the PACS and through sync: (their tasks, hidden gold copies inserted)."""
        studies = []
        for seed in seeds:
            study = make_ct_study(seed=seed, slices=12, size=96, pixel_spacing=4.0, slice_spacing=5.0,
                                  liver_lesions=2, lung_nodules=0)
            for ds in study.datasets:
                ds.SeriesDescription = f"{SERIES_PREFIX} {self.protocol.id}"
                ds.Manufacturer = "GE" if seed % 7 == 0 else "SIEMENS"  # a thin stratum for the report
            if self.pacs.store(study.datasets).failed:
                raise RadlabelError("the PACS refused a synthetic campaign study: see its log.")
            studies.append(study)
        summary = self.syncer.run()
        tasks = []
        for study in studies:
            record = next(s for s in summary.series if s["series_key"] == self.syncer.series_key(study.series_uid))
            if record["status"] != "done":
                raise RadlabelError(f"campaign series {record['series_key']} was {record['status']}: {record['reasons']}")
            self.truth[record["pseudo_series_uid"]] = truth_masks(study)
            tasks.append(record["task_id"])
        return tasks, summary.gold_copies

    def _truth_of(self, task_id: int) -> dict:
        """The simulated truth of a task; a calibration case or hidden-gold copy has its own series UIDs,
        so its truth is its source task's (the simulation knows what the readers must not)."""
        copy = self.desk.qa_tasks.kind_of(task_id)
        source = copy[2] if copy and copy[0] in ("calibration", "gold_copy") else task_id
        with label_studio_errors(f"read task {source}"):
            return self.truth[self.ls.tasks.get(id=source).data["series"]]

    def run(self, gold: int = 3, production: int = 16, first_seed: int = 700) -> CampaignResult:
        Provisioner(self.settings, self.progress).provision(self.protocol)
        readers = campaign_readers(gold)
        ids = self._register([r.name for r in readers] + ["gold-builder"])
        self.progress(f"campaign: building a gold standard of {gold} series …")
        gold_tasks, _ = self.store_and_sync(range(first_seed, first_seed + gold))
        builders = [readers[0], readers[1], SimulatedReader("gold-builder", 0.05, seed=9)]
        for task_id in gold_tasks:
            truth = self._truth_of(task_id)
            for reader in builders:
                self._post(task_id, reader.name, reader.read(truth), 200)
            with self.adjudicator._lock("reads", task_id):
                outcome = self.adjudicator.adjudicate_task(self.protocol, task_id)
            if outcome.status not in ("final", "already final"):
                raise RadlabelError(f"gold series task {task_id} did not reach consensus: {outcome.detail}")
        self.desk.gold.add(self.protocol, gold_tasks)
        certifications = {}
        for reader in readers:
            self.progress(f"campaign: {reader.name} reads the calibration set …")
            self.desk.calibration.calibrate(self.protocol, ids[reader.name], ReaderTier.RADIOLOGIST)
            for task_id in self.desk.calibration.tasks_of(self.protocol.id, ids[reader.name]):
                self._post(task_id, reader.name, reader.read(self._truth_of(task_id)), 300)
            certifications[reader.name], _ = self.desk.calibration.calibrate(self.protocol, ids[reader.name], ReaderTier.RADIOLOGIST)
        self.progress(f"campaign: {production} production series, every reader reads every task …")
        start = first_seed + 100
        production_tasks, copies = self.store_and_sync(range(start, start + production))
        # an uncertified reader's read fills no slot, so it reads while the certified readers' slots are open
        order = sorted(readers, key=lambda r: certifications[r.name].certified)
        for task_id in sorted(production_tasks + copies):
            truth = self._truth_of(task_id)
            for reader in order:
                self._post(task_id, reader.name, reader.read(truth), 250 + 20 * (reader.name == "drifting"))
        self.adjudicator.reconcile(self.protocol.id)  # whatever the webhook worker has not done yet
        return CampaignResult(self.protocol, ids, readers, gold_tasks, production_tasks, copies, certifications,
                              self.truth)
