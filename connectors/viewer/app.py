"""The readers' front: OHIF, the readers' API and the DICOMweb gateway, on one origin.

Serves the prebuilt OHIF viewer and the radlabel extension (static, public: they hold nothing),
a generated ``app-config.js`` whose DICOMweb data source is ``/dicom-web`` on this same origin,
the readers' API (``/radlabel/api``), Label Studio's editor for readers (``/radlabel/editor``,
``connectors/viewer/editor.py``) and the gateway (``connectors/viewer/gateway.py``): read-only
DICOMweb to the research archive, each reader's own task series only, bearer token required.
The archive's credentials stay on the server; the PACS is not in this front's settings at all.
Every answer carries CSP, frame and sniffing protections. Unknown paths fall back to
``index.html`` (OHIF routes on the client).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

from flask import Flask, Response, abort, request, send_from_directory

from connectors.viewer.gateway import DicomWebGateway, ReaderScope
from radlabel.settings import load_settings

# A readers' SEG upload is the largest body this front takes (the readers' API caps it too).
MAX_BODY_BYTES = 512 * 1024 * 1024


# The radlabel OHIF extension (ohif_extension/src), served by this front (issue #8).
EXTENSION_DIR = Path(__file__).resolve().parents[2] / "ohif_extension" / "src"
EXTENSION_URL = "/radlabel/extension/index.js"


def ohif_config(extensions: list[str] | None = None) -> dict:
    """The OHIF ``window.config`` for our Orthanc behind ``/dicom-web``."""
    return {
        "routerBasename": "/",
        "extensions": extensions or [],
        "modes": [],
        # The entry page is the radlabel worklist (the extension's panel), not OHIF's study list.
        "showStudyList": False,
        # Readers are told what the viewer is for in the radlabel panel; OHIF's banner would cover the viewport.
        "investigationalUseDialog": {"option": "never"},
        "maxNumberOfWebWorkers": 2,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "defaultDataSourceName": "radlabel",
        "dataSources": [
            {
                "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
                "sourceName": "radlabel",
                "configuration": {
                    "friendlyName": "radlabel Orthanc",
                    "name": "radlabel",
                    "wadoUriRoot": "/dicom-web",
                    "qidoRoot": "/dicom-web",
                    "wadoRoot": "/dicom-web",
                    "qidoSupportsIncludeField": False,
                    "imageRendering": "wadors",
                    "thumbnailRendering": "wadors",
                    "enableStudyLazyLoad": True,
                    "supportsFuzzyMatching": False,
                    # Orthanc 1.10 takes percent-encoded wildcards literally (stack notes).
                    "supportsWildcard": False,
                    "supportsStow": True,
                    "staticWado": False,
                    "singlepart": "bulkdata,video",
                    "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
                    "omitQuotationForMultipartRequest": True,
                },
            }
        ],
    }


def _inline_script_hashes(index_html: Path) -> list[str]:
    """CSP hashes of the inline scripts in OHIF's index.html (so no other inline script can run)."""
    try:
        text = index_html.read_text(errors="replace")
    except OSError:
        return []
    bodies = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", text, flags=re.S)
    return [f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'" for body in bodies if body]


def security_headers(index_html: Path) -> dict[str, str]:
    """Headers on every answer of the front. OHIF needs WebAssembly codecs, blob: workers and inline
    styles; its bundles use eval-like code paths (hence 'unsafe-eval'); inline scripts only by hash."""
    scripts = " ".join(["'self'", "'unsafe-eval'", "'wasm-unsafe-eval'", "blob:", *_inline_script_hashes(index_html)])
    policy = (f"default-src 'self'; script-src {scripts}; worker-src 'self' blob:; style-src 'self' 'unsafe-inline'; "
              "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self' blob: data:; object-src 'none'; "
              "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
    return {"Content-Security-Policy": policy, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer"}


def _unauthorised(registry, token: str) -> Response:
    """401 saying why the token opens nothing (missing, not a reader token, unknown, revoked, replaced)."""
    reason, sentence = registry.refusal(token)
    return Response(json.dumps({"error": sentence, "reason": reason}), status=401, mimetype="application/json",
                    headers={"WWW-Authenticate": "Bearer"})


def _public_routes(app: Flask, dist: Path) -> None:
    """What anyone may fetch: OHIF, the extension, its config and health (no data, no secret)."""
    @app.get("/radlabel/extension/<path:name>")
    def extension_file(name: str):
        """The radlabel OHIF extension (plain ES modules, loaded by OHIF through window.config.extensions)."""
        return send_from_directory(EXTENSION_DIR, name, max_age=0, mimetype="text/javascript"
                                   if name.endswith(".js") else None)

    @app.get("/health")
    def health():
        return {"status": "UP", "viewer": (dist / "index.html").exists()}

    @app.get("/app-config.js")
    def app_config():
        body = "window.config = " + json.dumps(ohif_config([EXTENSION_URL]), indent=2) + ";\n"
        return Response(body, mimetype="application/javascript", headers={"Cache-Control": "no-store"})

    @app.get("/", defaults={"path": "index.html"})
    @app.get("/<path:path>")
    def static_or_index(path: str):
        if path.startswith(("dicom-web", "radlabel/")):
            abort(404)
        target = (dist / path).resolve()
        if dist.resolve() in target.parents and target.is_file():
            return send_from_directory(dist, path)
        return send_from_directory(dist, "index.html")  # SPA fallback


def _slice_route(app: Flask, settings, image_key: str) -> None:
    @app.get("/radlabel/images/<key>/<preset>/<name>")
    def rendered_slice(key: str, preset: str, name: str):
        """A rendered slice for Label Studio: an expiring capability URL signed with a key of ours; no PHI in it."""
        from connectors.viewer import image_urls

        if not image_urls.valid(image_key, request.path, request.args.get("exp", ""), request.args.get("sig", "")):
            abort(403)  # not ours, altered, or expired
        if not (key.isalnum() and preset.replace("_", "").isalnum() and name[:-4].isdigit() and name.endswith(".png")):
            abort(404)
        reply = send_from_directory(settings.home / "images" / key / preset, name, max_age=3600)
        # A capability URL: no shared cache may keep it. Label Studio's canvas tools read the pixels: allow its origin.
        reply.headers["Cache-Control"] = "private, max-age=3600"
        reply.headers["Access-Control-Allow-Origin"] = settings.url("label_studio")
        return reply


def _reader_routes(app: Flask, settings, gateway: DicomWebGateway, registry) -> None:
    """What only a signed-in reader may fetch: protocol configurations and DICOMweb through the gateway."""
    def bearer() -> str:
        header = request.headers.get("Authorization", "")
        return header[7:].strip() if header[:7].lower() == "bearer " else ""

    def signed_in_reader():
        return registry.authenticate(bearer())

    @app.get("/radlabel/protocols/<protocol_id>.json")
    def protocol_config(protocol_id: str):
        """OHIF-side configuration of a provisioned protocol (presets, segments, codes): readers only."""
        if signed_in_reader() is None:
            return _unauthorised(registry, bearer())
        if not protocol_id.replace("_", "").isalnum():
            abort(404)
        return send_from_directory(settings.home / "protocols", f"{protocol_id}.json", max_age=0)

    @app.route("/dicom-web", defaults={"path": ""}, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    @app.route("/dicom-web/<path:path>", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    def dicomweb(path: str):
        reader = signed_in_reader()
        if reader is None:
            return _unauthorised(registry, bearer())
        return gateway.answer(reader, reader.ls_user_id)


def create_app() -> Flask:
    from connectors.readers import ReaderRegistry
    from connectors.viewer.api import Workspace, create_api, reader_tasks
    from connectors.viewer.editor import create_editor_api
    from connectors.wiring import Adapters

    settings = load_settings()
    adapters = Adapters(settings)
    secrets = settings.secrets()
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES  # werkzeug also holds it for chunked bodies
    headers = security_headers(settings.ohif_dist / "index.html")

    @app.after_request
    def protect(reply: Response) -> Response:
        for name, value in headers.items():
            reply.headers.setdefault(name, value)
        return reply

    tasks = reader_tasks(settings, adapters)  # one Label Studio view shared by the readers' API and the gateway
    app.register_blueprint(create_api(settings, tasks=tasks, adapters=adapters), url_prefix="/radlabel/api")
    # the Label Studio door: Label Studio's editor behind the reader's token (issue 17)
    app.register_blueprint(create_editor_api(settings, tasks=tasks, adapters=adapters), url_prefix="/radlabel/editor")
    gateway = DicomWebGateway(settings.url("orthanc"), (settings.gateway_user, secrets["gateway_password"]),
                              ReaderScope(lambda reader: Workspace(settings, tasks, adapters).accessible_series(reader)))
    _reader_routes(app, settings, gateway, ReaderRegistry(adapters.database))
    _slice_route(app, settings, secrets["image_url_key"])
    _public_routes(app, settings.ohif_dist)  # last: its catch-all must not shadow the routes above
    return app
