"""Loading protocol templates from YAML, with errors that name file, line and field."""

from __future__ import annotations

import json
import re
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
        if not isinstance(part, (str, int)) or (isinstance(part, str) and not part.isprintable()):
            part = repr(part)[:60]  # a key with a line break (or not a string) stays on one line
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _shown(value) -> str:
    """A value as a message quotes it: on one line, and not the whole of a huge one."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


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
        return f"{_shown(given)} is not {_PATTERN_WORDS.get(pattern, 'of the form ' + pattern)}"
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    if kind in ("enum", "literal_error") or "greater" in kind or "less" in kind:
        return f"{message[0].lower()}{message[1:]} (got {_shown(given)})"
    return f"{message[0].lower()}{message[1:]}"


def _problems_of(source: str, lines: dict, issues: list[tuple[tuple, str]]) -> list[str]:
    return [f"{source}:{_line_of(lines, path)}: {_dotted(path)}: {message}" for path, message in issues]


# Characters XML 1.0 cannot hold (YAML lets them in as escapes in double quotes): the Label Studio config
# and the instructions generated from a template would be broken.
_NOT_IN_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _control_characters(node, path: tuple = ()) -> Iterable[tuple[tuple, str]]:
    """(path, message) of each key or string value holding a character XML cannot hold."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _control_characters(key, path) if isinstance(key, str) else ()
            yield from _control_characters(value, (*path, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _control_characters(item, (*path, index))
    elif isinstance(node, str):
        found = _NOT_IN_XML.search(node)
        if found:
            yield path, f"holds the control character U+{ord(found.group()):04X}: remove it"


def _yaml_problem(exc: yaml.YAMLError, text: str) -> tuple[int, str]:
    """(line, one-line reason) of a YAML error."""
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow (NUL, control characters)
        line = text[:max(exc.position, 0)].count("\n") + 1
        return line, f"character #x{exc.character:04x} is not allowed in YAML" if isinstance(exc.character, int) \
            else "a character is not allowed in YAML"
    reason = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
    return (mark.line + 1 if mark else 1), (str(reason).splitlines() or ["not valid"])[0]


def parse_template(text: str, source: str = "<template>") -> Protocol:
    """Parse and validate a template; raise TemplateError listing every problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        line, reason = _yaml_problem(exc, text)
        raise TemplateError([f"{source}:{line}: not valid YAML ({reason})"]) from None
    except ValueError as exc:  # a value PyYAML cannot build, e.g. an integer of more than 4300 digits
        reason = (str(exc).splitlines() or [""])[0].split(";")[0][:120]
        raise TemplateError([f"{source}:1: not valid YAML ({reason})"]) from None
    except RecursionError:
        raise TemplateError([f"{source}:1: not valid YAML (nested too deeply)"]) from None
    if not isinstance(data, dict):
        raise TemplateError([f"{source}:1: a template is a YAML mapping of fields (id, name, version, classes, ...)"])
    try:
        lines, duplicates = _line_map(root)
    except RecursionError:  # an alias inside what it names (a: &x [*x]): the data has no end
        raise TemplateError([f"{source}:1: an alias refers to itself (or the template is nested too deeply): "
                             "write the values out"]) from None
    problems = [f"{source}:{line}: {_dotted(path)}: the key appears twice" for path, line in duplicates]
    problems += _problems_of(source, lines, list(_control_characters(data)))
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
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except OSError as exc:
        raise TemplateError([f"{path}: cannot be read ({exc.strerror})"]) from None
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise TemplateError([f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}): save the template as UTF-8"]) from None
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
