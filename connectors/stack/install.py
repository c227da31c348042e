"""``radlabel install``: the parts of the stack that do not come from apt.

- Label Studio (PyPI, pinned) in its own virtual environment under RADLABEL_TOOLS;
- the prebuilt OHIF viewer (npm ``@ohif/app``, pinned), fetched with ``npm pack``
  (``npm install`` fails on its dependency tree) and pruned of what we do not serve;
- the ITK-Wasm pipeline behind OHIF's labelmap interpolation (npm, pinned to the version the viewer
  was built with), served by the viewer front itself: the prebuilt viewer fetches it from a CDN at run time.
Both are skipped when already complete; an interrupted install is redone.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Callable

from radlabel.errors import RadlabelError
from radlabel.settings import LABEL_STUDIO_VERSION, OHIF_VERSION, Settings

# Served by nobody here: ONNX runtime for in-browser AI tools, the
# microscopy viewer, and source maps (~150 MB together).
_OHIF_PRUNED = ("ort", "dicom-microscopy-viewer")


def _run(command: list[str], what: str, cwd: Path | None = None) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join("    " + line for line in (done.stdout + done.stderr).splitlines()[-10:])
        raise RadlabelError(f"{what} failed (exit {done.returncode}); its output ends with:\n{tail}")


def install_label_studio(settings: Settings, progress: Callable[[str], None]) -> bool:
    target = settings.label_studio_venv
    marker = target / ".radlabel-installed"  # written last: its absence means "not (fully) installed"
    if marker.exists():
        return False
    progress(f"installing Label Studio {LABEL_STUDIO_VERSION} into {target} (about a minute) …")
    shutil.rmtree(target, ignore_errors=True)
    try:
        _run([sys.executable, "-m", "venv", str(target)], "creating Label Studio's virtual environment")
        _run([str(target / "bin" / "pip"), "install", "--quiet", f"label-studio=={LABEL_STUDIO_VERSION}"],
             f"pip install label-studio=={LABEL_STUDIO_VERSION}")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    marker.write_text(LABEL_STUDIO_VERSION + "\n")
    return True


def install_ohif(settings: Settings, progress: Callable[[str], None]) -> bool:
    if (settings.ohif_dist / "index.html").exists():
        return False
    if shutil.which("npm") is None:
        raise RadlabelError("npm is not installed: run `make install` or `apt-get install npm`.")
    progress(f"fetching the OHIF viewer {OHIF_VERSION} with npm pack …")
    settings.tools.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.tools) as staging:
        staging_path = Path(staging)
        _run(["npm", "pack", "--silent", f"@ohif/app@{OHIF_VERSION}"], "npm pack @ohif/app", cwd=staging_path)
        archive = next(staging_path.glob("ohif-app-*.tgz"))
        with tarfile.open(archive) as tar:
            tar.extractall(staging_path, filter="data")
        dist = staging_path / "package" / "dist"
        for name in _OHIF_PRUNED:
            shutil.rmtree(dist / name, ignore_errors=True)
        for source_map in dist.rglob("*.map"):
            source_map.unlink()
        final = settings.ohif_dist.parent
        shutil.rmtree(final, ignore_errors=True)
        final.mkdir(parents=True)
        (staging_path / "package" / "dist").rename(settings.ohif_dist)
        (staging_path / "package" / "LICENSE").rename(final / "LICENSE")
    return True


# OHIF 3.13.2's labelmap interpolation runs this ITK-Wasm pipeline; its bundle names the CDN copy.
ITK_INTERPOLATION = "@itk-wasm/morphological-contour-interpolation"
ITK_INTERPOLATION_VERSION = "1.1.0"
_ITK_CDN = f"https://cdn.jsdelivr.net/npm/{ITK_INTERPOLATION}@${{dist_version}}/dist/pipelines"
ITK_PIPELINES_PATH = "radlabel-itk/morphological-contour-interpolation"


def install_interpolation_pipeline(settings: Settings, progress: Callable[[str], None]) -> bool:
    """The interpolation pipeline under the viewer's own origin, and the bundle pointed at it (nothing downloads
    at run time; the front's CSP allows only its own origin anyway)."""
    target = settings.ohif_dist / ITK_PIPELINES_PATH
    marker = target / ".radlabel-installed"
    if marker.exists() or not (settings.ohif_dist / "index.html").exists():
        return False
    progress(f"fetching {ITK_INTERPOLATION} {ITK_INTERPOLATION_VERSION} (OHIF's labelmap interpolation) with npm pack …")
    with tempfile.TemporaryDirectory(dir=settings.tools) as staging:
        staging_path = Path(staging)
        _run(["npm", "pack", "--silent", f"{ITK_INTERPOLATION}@{ITK_INTERPOLATION_VERSION}"], f"npm pack {ITK_INTERPOLATION}",
             cwd=staging_path)
        with tarfile.open(next(staging_path.glob("*.tgz"))) as tar:
            tar.extractall(staging_path, filter="data")
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        (staging_path / "package" / "dist" / "pipelines").rename(target)
    local = "${globalThis.location.origin}/" + ITK_PIPELINES_PATH  # also evaluated inside web workers
    for bundle in settings.ohif_dist.glob("*.js"):
        text = bundle.read_text(errors="surrogateescape")
        if _ITK_CDN in text:
            partial = bundle.with_suffix(".partial")
            partial.write_text(text.replace(_ITK_CDN, local), errors="surrogateescape")
            partial.replace(bundle)
    marker.write_text(ITK_INTERPOLATION_VERSION + "\n")
    return True


def install(settings: Settings, progress: Callable[[str], None] = lambda message: None) -> list[str]:
    """Install what is missing; names of what was installed now."""
    done = []
    if install_label_studio(settings, progress):
        done.append(f"label-studio {LABEL_STUDIO_VERSION}")
    if install_ohif(settings, progress):
        done.append(f"ohif {OHIF_VERSION}")
    if install_interpolation_pipeline(settings, progress):
        done.append(f"{ITK_INTERPOLATION} {ITK_INTERPOLATION_VERSION}")
    return done
