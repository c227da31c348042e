"""Label Studio's own editor, taken from the installed Label Studio (never copied into radlabel).

Label Studio 1.23 ships no standalone editor bundle (its ``web/dist/libs/editor`` holds only a
``version.json``): the editor (``window.LabelStudio``) is a lazily loaded webpack chunk of Label
Studio's app (``web/dist/apps/labelstudio``). The gateway's editor page loads that app's runtime,
vendor and main chunks without running the app's entry (the page shim drops it), then loads the
editor chunks the app itself would load. Which chunks and which module that is, is read here from
the installed bundle, so the page follows the Label Studio version radlabel installs.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from radlabel.errors import RadlabelError

_EDITOR_GLOBAL = "window.LabelStudio="
_ENTRY_CHUNK = re.compile(r"\.push\(\[\[(\d+)\]")
_LAZY_IMPORT = re.compile(r"Promise\.all\(\[((?:\w\.e\(\d+\),?)+)\]\)\.then\(\w\.bind\(\w,(\d+)\)\)")


@dataclass(frozen=True)
class EditorBundle:
    folder: Path
    main_chunk: int  # main.js's chunk: its modules are needed, its entry (the whole app) is not
    chunks: tuple[int, ...]  # the chunks the app loads before requiring the editor's module
    module: int  # the module that sets window.LabelStudio
    feature_flags: str = "{}"  # JSON: the flags Label Studio's own pages give its editor (multi-image series, …)


def feature_flags(folder: Path) -> dict[str, bool]:
    """The feature flags Label Studio's server puts in its pages (``APP_SETTINGS.feature_flags``): without a flag
    service they are its fixed ``STALE_FEATURE_FLAGS``, which switch on, e.g., multi-image series. Read (as data,
    never run) from the same installed Label Studio as the bundle."""
    source = folder.parents[3] / "label_studio" / "core" / "feature_flags" / "stale_feature_flags.py"
    try:
        tree = ast.parse(source.read_text())
    except (OSError, SyntaxError):
        return {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "STALE_FEATURE_FLAGS" for t in node.targets):
            try:
                flags = ast.literal_eval(node.value)
            except ValueError:
                return {}
            return {k: v for k, v in flags.items() if isinstance(k, str) and isinstance(v, bool)}
    return {}


def bundle_folder(label_studio_venv: Path) -> Path | None:
    """Label Studio's app bundle in its virtual environment, or None when Label Studio is not installed."""
    found = sorted(label_studio_venv.glob("lib/python3*/site-packages/web/dist/apps/labelstudio/main.js"))
    return found[0].parent if found else None


@lru_cache(maxsize=4)
def editor_bundle(folder: Path) -> EditorBundle:
    """How to load the editor out of this app bundle; RadlabelError if the bundle is not laid out as expected."""
    main = (folder / "main.js").read_text(errors="replace")
    entry = _ENTRY_CHUNK.search(main[:4000])
    holders = [p for p in folder.glob("*.js") if _EDITOR_GLOBAL in p.read_text(errors="replace")]
    if entry is None or len(holders) != 1 or not holders[0].stem.isdigit():
        raise RadlabelError(f"Label Studio's app bundle in {folder} is not the one radlabel knows (no single editor "
                            "chunk): reinstall Label Studio with `radlabel install`.")
    editor_chunk = int(holders[0].stem)
    for chunk_list, module in _LAZY_IMPORT.findall(main):
        chunks = tuple(int(n) for n in re.findall(r"\d+", chunk_list))
        if editor_chunk in chunks:
            return EditorBundle(folder, int(entry[1]), chunks, int(module), json.dumps(feature_flags(folder)))
    raise RadlabelError(f"Label Studio's app bundle in {folder} never loads its editor chunk: reinstall Label Studio "
                        "with `radlabel install`.")
