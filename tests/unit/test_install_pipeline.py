"""The labelmap-interpolation pipeline is served by the viewer front: the OHIF bundle that named the CDN copy names
the front's own path afterwards (npm stood in for by a local tarball; the rewrite and the files are the real code)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from connectors.stack import install
from radlabel.settings import Settings

CDN = "https://cdn.jsdelivr.net/npm/@itk-wasm/morphological-contour-interpolation@${dist_version}/dist/pipelines"


def fake_npm_pack(command, what, cwd=None):
    assert command[:3] == ["npm", "pack", "--silent"] and command[3] == "@itk-wasm/morphological-contour-interpolation@1.1.0"
    with tarfile.open(Path(cwd) / "itk-wasm-morphological-contour-interpolation-1.1.0.tgz", "w:gz") as tar:
        for name, body in (("morphological-contour-interpolation.wasm", b"\0asm"), ("morphological-contour-interpolation.js", b"//")):
            info = tarfile.TarInfo(f"package/dist/pipelines/{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))


def test_the_interpolation_pipeline_is_served_from_the_front_not_a_cdn(tmp_path, monkeypatch):
    settings = Settings(home=tmp_path / "home", tools=tmp_path / "tools", ports={})
    dist = settings.ohif_dist
    dist.mkdir(parents=True)
    (dist / "index.html").write_text("<html></html>")
    (dist / "7071.bundle.js").write_text(f"let base = `{CDN}`; // é")
    (dist / "app.bundle.js").write_text("nothing to change")
    monkeypatch.setattr(install, "_run", fake_npm_pack)
    assert install.install_interpolation_pipeline(settings, lambda message: None) is True
    served = dist / "radlabel-itk" / "morphological-contour-interpolation"
    assert (served / "morphological-contour-interpolation.wasm").read_bytes() == b"\0asm"
    bundle = (dist / "7071.bundle.js").read_text()
    assert "cdn.jsdelivr.net" not in bundle
    assert bundle == "let base = `${globalThis.location.origin}/radlabel-itk/morphological-contour-interpolation`; // é"
    assert (dist / "app.bundle.js").read_text() == "nothing to change"
    # Done once: a second install leaves it alone (npm is not asked again).
    monkeypatch.setattr(install, "_run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("npm asked again")))
    assert install.install_interpolation_pipeline(settings, lambda message: None) is False
