"""Orthanc's own wall: each archive user may make only the requests its caller needs.

Loaded by Orthanc itself through Debian's ``orthanc-python`` plugin (``PythonScript`` in the
archive's configuration), so it holds even against a caller that bypasses radlabel's gateway.
The rules (user → role) come from the ``RadlabelAccess`` key of the same configuration file.
Roles:

- ``admin``: everything (the administrator; the hospital on its own PACS);
- ``pipeline``: DICOMweb search, retrieve and store, plus ``GET /system`` (health) — no REST API,
  no delete, no method override;
- ``reader`` / ``gateway``: DICOMweb GET only, plus ``GET /system``.

Anything with a dot segment, an encoded character or a method-override header is refused for
every role but ``admin``. The functions below are plain Python (standard library only: Orthanc runs
the system's Python) so tests can run them without Orthanc; the stack writes this file's text plus a
call of ``_install()`` next to the archive's configuration.
"""

from __future__ import annotations

import base64
import binascii
import json

__all__ = ["allowed", "user_of"]

_OVERRIDES = ("x-http-method-override", "x-http-method", "x-method-override")
_READ_ONLY = {"reader", "gateway"}


def user_of(headers: dict) -> str:
    """The basic-auth user name of a request ('' when there is none)."""
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    if not value.lower().startswith("basic "):
        return ""
    try:
        return base64.b64decode(value[6:].strip(), validate=True).decode("utf-8").split(":", 1)[0]
    except (binascii.Error, UnicodeDecodeError):
        return ""


def allowed(roles: dict, method: str, uri: str, headers: dict, get: dict) -> bool:
    """May this request go on? ``method`` is GET/POST/PUT/DELETE, ``uri`` the path without query."""
    role = roles.get(user_of(headers))
    if role == "admin":
        return True
    if role is None or "%" in uri or "\\" in uri or any(part in (".", "..") for part in uri.split("/")):
        return False
    if any(k.lower() in _OVERRIDES for k in headers) or any(k.lower() == "_method" for k in get):
        return False
    if method == "GET" and uri == "/system":
        return True
    if not uri.startswith("/dicom-web/"):
        return False
    if role in _READ_ONLY:
        return method == "GET"
    return role == "pipeline" and method in ("GET", "POST")


def _install() -> None:  # pragma: no cover - runs inside Orthanc
    import orthanc

    roles = json.loads(orthanc.GetConfiguration()).get("RadlabelAccess", {})
    names = {orthanc.HttpMethod.GET: "GET", orthanc.HttpMethod.POST: "POST",
             orthanc.HttpMethod.PUT: "PUT", orthanc.HttpMethod.DELETE: "DELETE"}

    def incoming(uri, **request):
        return allowed(roles, names.get(request.get("method"), "OTHER"), uri, request.get("headers") or {},
                       request.get("get") or {})

    orthanc.RegisterIncomingHttpRequestFilter(incoming)

