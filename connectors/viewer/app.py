"""Same-origin web front for OHIF.

Serves the prebuilt OHIF viewer, a generated ``app-config.js`` whose DICOMweb
data source is ``/dicom-web`` on this same origin, and a proxy from
``/dicom-web`` to Orthanc that adds Orthanc's credentials on the server side
(the browser never holds them; Orthanc has no CORS, hence one origin).
Unknown paths fall back to ``index.html`` (OHIF routes on the client).
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path

import requests
from flask import Flask, Response, abort, request, send_from_directory

from radlabel.settings import load_settings

# Hop-by-hop headers and those requests recomputes are not forwarded.
_DROPPED = {"connection", "keep-alive", "transfer-encoding", "content-encoding", "content-length", "host",
            "authorization", "cookie", "te", "trailers", "upgrade", "proxy-authorization"}


# The radlabel OHIF extension (ohif_extension/src), served by this front (issue #8).
EXTENSION_DIR = Path(__file__).resolve().parents[2] / "ohif_extension" / "src"
EXTENSION_URL = "/radlabel/extension/index.js"


def ohif_config(extensions: list[str] | None = None) -> dict:
    """The OHIF ``window.config`` for our Orthanc behind ``/dicom-web``."""
    return {
        "routerBasename": "/",
        "extensions": extensions or [],
        "modes": [],
        "showStudyList": True,
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


def create_app() -> Flask:
    settings = load_settings()
    secrets = settings.secrets()
    dist = settings.ohif_dist
    orthanc = settings.url("orthanc")
    auth = (settings.orthanc_user, secrets["orthanc_password"])
    upstream = requests.Session()
    image_key = secrets["image_url_key"]
    label_studio_origin = settings.url("label_studio")
    app = Flask(__name__, static_folder=None)

    # -- OHIF extension and its connector API (issue #8) --
    from connectors.viewer.api import create_api

    app.register_blueprint(create_api(settings), url_prefix="/radlabel/api")

    @app.get("/radlabel/extension/<path:name>")
    def extension_file(name: str):
        """The radlabel OHIF extension (plain ES modules, loaded by OHIF through window.config.extensions)."""
        return send_from_directory(EXTENSION_DIR, name, max_age=0, mimetype="text/javascript"
                                   if name.endswith(".js") else None)
    # -- end OHIF extension --

    @app.get("/health")
    def health():
        return {"status": "UP", "viewer": (dist / "index.html").exists()}

    @app.get("/app-config.js")
    def app_config():
        body = "window.config = " + json.dumps(ohif_config([EXTENSION_URL]), indent=2) + ";\n"
        return Response(body, mimetype="application/javascript", headers={"Cache-Control": "no-store"})

    @app.get("/radlabel/protocols/<protocol_id>.json")
    def protocol_config(protocol_id: str):
        """OHIF-side configuration of a provisioned protocol (presets, segments, codes)."""
        if not protocol_id.replace("_", "").isalnum():
            abort(404)
        return send_from_directory(settings.home / "protocols", f"{protocol_id}.json", max_age=0)

    @app.get("/radlabel/images/<key>/<preset>/<name>")
    def rendered_slice(key: str, preset: str, name: str):
        """A rendered slice for Label Studio: capability URL signed with a key of ours; no PHI in it."""
        from connectors.sync import sign_image_path

        given = request.args.get("sig", "")
        if not hmac.compare_digest(given, sign_image_path(image_key, request.path)):
            abort(403)
        if not (key.isalnum() and preset.replace("_", "").isalnum() and name[:-4].isdigit() and name.endswith(".png")):
            abort(404)
        reply = send_from_directory(settings.home / "images" / key / preset, name, max_age=3600)
        # Label Studio's canvas tools read the pixels: allow its origin.
        reply.headers["Access-Control-Allow-Origin"] = label_studio_origin
        return reply

    @app.route("/dicom-web/<path:path>", methods=["GET", "POST", "DELETE"])
    def dicomweb(path: str):
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED}
        # Orthanc builds BulkDataURIs from Host: make them point back at us.
        headers["Host"] = request.host
        headers["Accept-Encoding"] = "identity"
        try:
            reply = upstream.request(
                request.method,
                f"{orthanc}/dicom-web/{path}",
                params=request.query_string.decode() or None,
                data=request.get_data() if request.method == "POST" else None,
                headers=headers,
                auth=auth,
                stream=True,
                timeout=(5, 300),
            )
        except requests.RequestException:
            return Response("Orthanc is not reachable: run `radlabel status`.\n", status=502, mimetype="text/plain")
        passed = [(k, v) for k, v in reply.headers.items() if k.lower() not in _DROPPED]
        return Response(reply.iter_content(chunk_size=1 << 16), status=reply.status_code, headers=passed)

    @app.get("/", defaults={"path": "index.html"})
    @app.get("/<path:path>")
    def static_or_index(path: str):
        if path.startswith(("dicom-web", "radlabel/")):
            abort(404)
        target = (dist / path).resolve()
        if dist.resolve() in target.parents and target.is_file():
            return send_from_directory(dist, path)
        return send_from_directory(dist, "index.html")  # SPA fallback

    return app
