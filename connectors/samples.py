"""``radlabel samples load``: sample studies into the PACS (the local stand-in for the hospital's) over STOW-RS.

(a) synthetic CT and MR studies from :mod:`radlabel.phantom`, their ground
truth kept beside them in the state directory; (b) the real 20-slice CT that
ships with radlabel (TotalSegmentator test data, Apache-2.0), its blank UIDs
repaired explicitly; (c) optionally the user's own DICOM files or folders.
Every file is read before anything is stored, so a bad file stores nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from pydicom import Dataset

from connectors.ports import DicomArchive
from connectors.wiring import Adapters
from radlabel.dicom_files import read_dicom_files, repair_missing_uids
from radlabel.errors import RadlabelError
from radlabel.phantom import SyntheticStudy, make_ct_study, make_mr_study
from radlabel.settings import Settings

SHARED_CT = Path(__file__).resolve().parent.parent / "radlabel" / "sample_data" / "totalseg-ct-20"


@dataclass
class LoadedSeries:
    source: str
    modality: str
    study_uid: str
    series_uid: str
    instances: int
    stored: int
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return self.__dict__.copy()


@dataclass
class SampleSizes:
    ct_slices: int = 120
    mr_slices: int = 40
    ct_studies: int = 1
    mr_studies: int = 1


def shared_ct_datasets() -> tuple[list[Dataset], list[str]]:
    """The real CT, UIDs repaired; the notes say which repairs were made."""
    datasets = read_dicom_files([SHARED_CT / "dicom"])
    repairs = repair_missing_uids(datasets)
    return datasets, [f"{r.attribute} blank in {r.count} instance(s): {r.how}" for r in repairs]


def _store(client: DicomArchive, source: str, datasets: list[Dataset], notes: list[str]) -> list[LoadedSeries]:
    result = client.store(datasets)
    if result.failed:
        raise RadlabelError(
            f"the PACS refused {len(result.failed)} of {len(datasets)} instance(s) from {source}: see the Orthanc log; "
            "instances already stored are kept."
        )
    by_series: dict[str, list[Dataset]] = {}
    for ds in datasets:
        by_series.setdefault(str(ds.SeriesInstanceUID), []).append(ds)
    stored = set(result.stored)
    return [
        LoadedSeries(source, str(items[0].get("Modality", "")), str(items[0].StudyInstanceUID), uid,
                     len(items), sum(1 for ds in items if str(ds.SOPInstanceUID) in stored), notes)
        for uid, items in by_series.items()
    ]


def _keep_truth(settings: Settings, study: SyntheticStudy) -> None:
    folder = settings.home / "samples" / study.series_uid
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "truth_labelmap.npy", study.labelmap)
    (folder / "truth.json").write_text(json.dumps(study.truth(), indent=1))


def load_samples(settings: Settings, sizes: SampleSizes = SampleSizes(), extra: list[Path] = (),
                 synthetic: bool = True, real: bool = True,
                 progress: Callable[[str], None] = lambda message: None,
                 pacs: DicomArchive | None = None) -> list[LoadedSeries]:
    """Store the samples (and any extra files) in the PACS (``pacs``: the hospital's loader by default); return
    one record per series."""
    extra_datasets = read_dicom_files(extra) if extra else []  # fail before storing anything
    client = pacs or Adapters(settings).hospital_pacs
    loaded: list[LoadedSeries] = []
    if extra_datasets:
        progress(f"storing {len(extra_datasets)} file(s) you gave …")
        loaded += _store(client, "user files", extra_datasets, [])
    if real:
        datasets, notes = shared_ct_datasets()
        progress(f"storing the real CT ({len(datasets)} slices) …")
        loaded += _store(client, "totalseg-ct-20", datasets, notes)
    if synthetic:
        makers = [("synthetic CT", make_ct_study, sizes.ct_slices, sizes.ct_studies),
                  ("synthetic MR", make_mr_study, sizes.mr_slices, sizes.mr_studies)]
        for label, make, slices, count in makers:
            for seed in range(1, count + 1):
                progress(f"making and storing {label} #{seed} ({slices} slices) …")
                study = make(seed=seed, slices=slices)
                _keep_truth(settings, study)
                loaded += _store(client, label, study.datasets, [f"ground truth in samples/{study.series_uid}/"])
    return loaded
