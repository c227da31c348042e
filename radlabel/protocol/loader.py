"""Loading protocol templates from YAML, with errors that name file, line and field."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import yaml
from pydantic import ValidationError

from radlabel.errors import RadlabelError
from radlabel.protocol.template import Protocol

# Human words for the patterns of content.py and template.py.
_PATTERN_WORDS = {
    r"^#[0-9a-fA-F]{6}$": "a colour written #RRGGBB",
    r"^[a-z][a-z0-9_]*$": "lower-case letters, digits and underscores, starting with a letter",
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$": "a semantic version MAJOR.MINOR.PATCH such as 1.0.0",
    r"^[A-Z]{2,4}$": "a DICOM modality such as CT or MR",
    r"^basic$": "basic (the PS3.15 Basic Profile)",
    r"^(mask|hold)$": "mask or hold",
    r"^(flag|hold)$": "flag or hold",
    r"^[A-Z][A-Z0-9_.\-]*$": "a coding scheme designator such as SCT or DCM",
}


class TemplateError(RadlabelError):
    """A template broke one or more rules; ``problems`` holds one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(problems[0] if len(problems) == 1 else
                         f"{len(problems)} problems:\n" + "\n".join("  " + p for p in problems))


@dataclass
class LintResult:
    path: Path
    protocol: Protocol | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _line_map(node, path: tuple = (), lines: dict | None = None, duplicates: list | None = None):
    """Map each path of keys/indices to its 1-based line; note duplicate keys."""
    lines = {} if lines is None else lines
    duplicates = [] if duplicates is None else duplicates
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                duplicates.append(((*path, key), key_node.start_mark.line + 1))
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _line_map(value_node, (*path, key), lines, duplicates)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _line_map(item, (*path, index), lines, duplicates)
    return lines, duplicates


def _dotted(path: Iterable) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _line_of(lines: dict, path: tuple) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def _describe(error: dict) -> str:
    kind, message = error["type"], error["msg"]
    given = error.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field here (a typo?)"
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern", "")
        return f"{given!r} is not {_PATTERN_WORDS.get(pattern, 'of the form ' + pattern)}"
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    if kind in ("enum", "literal_error") or "greater" in kind or "less" in kind:
        return f"{message[0].lower()}{message[1:]} (got {given!r})"
    return f"{message[0].lower()}{message[1:]}"


def _problems_of(source: str, lines: dict, issues: list[tuple[tuple, str]]) -> list[str]:
    return [f"{source}:{_line_of(lines, path)}: {_dotted(path)}: {message}" for path, message in issues]


def parse_template(text: str, source: str = "<template>") -> Protocol:
    """Parse and validate a template; raise TemplateError listing every problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise TemplateError([f"{source}:{line}: not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    if not isinstance(data, dict):
        raise TemplateError([f"{source}:1: a template is a YAML mapping of fields (id, name, version, classes, ...)"])
    lines, duplicates = _line_map(root)
    problems = [f"{source}:{line}: {_dotted(path)}: the key appears twice" for path, line in duplicates]
    try:
        protocol = Protocol.model_validate(data)
    except ValidationError as exc:
        issues = [(tuple(error["loc"]), _describe(error)) for error in exc.errors()]
        raise TemplateError(problems + _problems_of(source, lines, issues)) from None
    problems += _problems_of(source, lines, [(issue.path, issue.message) for issue in protocol.issues()])
    if problems:
        raise TemplateError(problems)
    return protocol


def load_template(path: Path | str) -> Protocol:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TemplateError([f"{path}: cannot be read ({exc.strerror})"]) from None
    return parse_template(text, str(path))


def template_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        else:
            files.append(path)
    return files


def lint(paths: Iterable[Path]) -> list[LintResult]:
    results = []
    for path in template_files(paths):
        try:
            results.append(LintResult(path, load_template(path)))
        except TemplateError as exc:
            results.append(LintResult(path, None, exc.problems))
    return results


def json_schema() -> str:
    """The template's JSON Schema (for editors and other tools)."""
    schema = Protocol.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "radlabel protocol template"
    return json.dumps(schema, indent=2)
