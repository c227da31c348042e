"""Copies of a task that do not give themselves away: calibration cases and hidden gold.

A reader must not be able to tell a hidden-gold copy from a production task, nor match a calibration
case to the gold task it came from. So a copy gets an identity of its own: the research series is
stored again in the research archive under new study, series, instance and frame-of-reference UIDs
and a new patient pseudonym (derived from a random token, so two copies of one source differ too),
and its rendered slices are served under a new image key with freshly signed URLs. Pixels and
geometry stay as they are: scoring compares a copy's read with its reference slice by slice.
"""

from __future__ import annotations

import os
import secrets
import shutil

from connectors.ports import DicomArchive
from radlabel.errors import RadlabelError
from radlabel.ingest.deid import Deidentifier
from radlabel.protocol.labelconfig import IMAGES_KEY
from radlabel.settings import Settings

__all__ = ["disguised_copy"]


def _new_key(images: dict, token: str) -> tuple[str, str]:
    """(old image key, new image key) from a task's signed slice URLs."""
    first = next(iter(images.values()))[0]
    old = first.split("/radlabel/images/", 1)[1].split("/", 1)[0]
    return old, token


def _relink_images(settings: Settings, old: str, new: str) -> None:
    source, target = settings.home / "images" / old, settings.home / "images" / new
    for png in source.rglob("*.png"):
        destination = target / png.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(png, destination)  # no second copy on disk where the file system allows it
        except OSError:
            shutil.copyfile(png, destination)


def _signed(settings: Settings, images: dict[str, list[str]], old: str, new: str) -> dict[str, list[str]]:
    from connectors.viewer import image_urls

    key = settings.secrets()["image_url_key"]
    out = {}
    for preset, urls in images.items():
        out[preset] = []
        for url in urls:
            path = url.split("?", 1)[0]
            path = path[path.index("/radlabel/images/"):].replace(f"/radlabel/images/{old}/", f"/radlabel/images/{new}/", 1)
            out[preset].append(image_urls.signed_url(settings.url("viewer"), key, path))
    return out


def _restore_under_new_uids(archive, data: dict, deid: Deidentifier, token: str) -> dict[str, str]:
    """Store the research series again under new UIDs; the old -> new UID map."""
    datasets = archive.retrieve_series(data["study"], data["series"], media_types=(("application/dicom", "*"),))
    if not datasets:
        raise RadlabelError("the research series of a gold task is not in the research archive: run `radlabel sync`.")
    mapping: dict[str, str] = {}

    def new(uid) -> str:
        uid = str(uid)
        mapping.setdefault(uid, deid.uid(f"copy:{token}:{uid}"))
        return mapping[uid]

    patient = "RL" + deid.digest("copy-patient", token).hex()[:12].upper()
    for ds in datasets:
        for attribute in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
            if attribute in ds:
                setattr(ds, attribute, new(getattr(ds, attribute)))
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientID, ds.PatientName, ds.StudyID = patient, patient, ""
    stored = archive.store(datasets)
    if stored.failed or len(stored.stored) != len(datasets):
        raise RadlabelError("the research archive did not store a disguised copy: see its log; nothing was created.")
    return mapping


def disguised_copy(settings: Settings, data: dict, archive: DicomArchive) -> dict:
    """Task data for a copy with its own identity (UIDs, patient pseudonym, image key); the copy of the research
    series goes to ``archive`` (the research archive)."""
    token = secrets.token_hex(12)
    deid = Deidentifier(bytes.fromhex(settings.secrets()["pseudonym_key"]))
    mapping = _restore_under_new_uids(archive, data, deid, token)
    images = data.get("images_by_preset") or {"default": data[IMAGES_KEY]}
    old, new = _new_key(images, token)
    _relink_images(settings, old, new)
    signed = _signed(settings, images, old, new)
    copy = dict(data)
    copy.update(study=mapping[str(data["study"])], series=mapping[str(data["series"])],
                sop_instance_uids=[mapping.get(str(u), u) for u in data.get("sop_instance_uids") or []])
    if "images_by_preset" in data:
        copy["images_by_preset"] = signed
    copy[IMAGES_KEY] = signed[data.get("preset")] if data.get("preset") in signed else next(iter(signed.values()))
    return copy
