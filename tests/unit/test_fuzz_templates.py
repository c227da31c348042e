"""Fuzzing protocol templates: every shipped template, mutated field by field and byte by byte.

Seeded loops (deterministic): keys deleted, values swapped between types (str, int, float, bool, list,
dict, None), out-of-range numbers, huge and odd strings, duplicated entries and keys, then YAML text
damage. A template loads (and everything generated from it is well formed), or it is refused with
TemplateError whose every problem is one line starting ``<file>:<line>: `` -- never another exception.
"""

from __future__ import annotations

import copy
import json
import random
import re
from pathlib import Path
from xml.etree.ElementTree import fromstring

import pytest
import yaml

from radlabel.cli import main
from radlabel.protocol import TemplateError, load_template
from radlabel.protocol.instructions import instructions_html
from radlabel.protocol.labelconfig import label_config
from radlabel.protocol.ohif import ohif_config

SEED = 1234
TEMPLATES = sorted((Path(__file__).resolve().parents[2] / "protocol_templates").glob("*.yaml"))
VALUES = [None, 0, -1, 1, 7, 2**70, -2**70, 1e308, -1e-308, float("nan"), float("inf"), True, False, "", " ",
          "x" * 5000, "ünïcødé ✓ \u202e 🫁", "a\x01b", "line\nbreak", "<b>&amp;</b>", "#zzzzzz", "2020-13-45",
          "1.0.0", "CT", "senior", "mask", "basic", [], {}, [1, "a"], {"a": 1}, {1: 2}, [None], [[]], {"": None},
          ["mask", "mask"], 3.5, -0.0]
ODD_KEYS = [1, None, True, 2.5, "ünï", "x" * 300, "name", "", "line\nbreak", "id"]


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, (*prefix, index))


def at(node, path):
    for part in path:
        node = node[part]
    return node


def mutate(rng: random.Random, data: dict) -> dict:
    data = copy.deepcopy(data)
    for _ in range(rng.randint(1, 3)):
        choices = [p for p in paths(data) if p]
        if not choices:
            break
        path = rng.choice(choices)
        parent, key = at(data, path[:-1]), path[-1]
        operation = rng.choice(["delete", "set", "set", "set", "duplicate", "rename", "scale"])
        if operation == "delete":
            del parent[key]
        elif operation == "set":
            parent[key] = copy.deepcopy(rng.choice(VALUES))
        elif operation == "duplicate" and isinstance(parent, list):
            parent.insert(rng.randrange(len(parent) + 1), copy.deepcopy(parent[key]))
        elif operation == "rename" and isinstance(parent, dict):
            parent[rng.choice(ODD_KEYS)] = parent.pop(key)
        elif operation == "scale" and isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
            parent[key] = parent[key] * rng.choice([-1, 0, 10, 1000, 10**9]) + rng.choice([0, 0.5, -1])
    return data


def load_or_refuse(path: Path):
    """The loader's contract, and what a template that loads must generate."""
    try:
        protocol = load_template(path)
    except TemplateError as exc:
        assert exc.problems, "a TemplateError without problems"
        for problem in exc.problems:
            assert re.match(re.escape(str(path)) + r":\d+: ", problem), problem
            assert "\n" not in problem and len(problem) < 600, problem
        if len(exc.problems) == 1:
            assert str(exc) == exc.problems[0]
        return None
    fromstring(label_config(protocol))  # well-formed XML for Label Studio
    json.dumps(ohif_config(protocol), allow_nan=False)
    instructions_html(protocol)
    return protocol


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.stem)
def test_field_mutations_load_or_name_file_line_and_field(template, tmp_path):
    base = yaml.safe_load(template.read_text(encoding="utf-8"))
    rng = random.Random(f"{SEED}-{template.stem}")
    outcomes = {"loaded": 0, "refused": 0}
    for n in range(60):
        data = mutate(rng, base)
        try:
            text = yaml.safe_dump(data, sort_keys=rng.random() < 0.3, allow_unicode=rng.random() < 0.5)
        except yaml.YAMLError:
            continue  # something YAML itself cannot write
        path = write(tmp_path / f"{template.stem}-{n}.yaml", text)
        outcomes["loaded" if load_or_refuse(path) else "refused"] += 1
    assert outcomes["refused"] > 25 and outcomes["loaded"] > 0, outcomes


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.stem)
def test_text_damage_loads_or_names_file_and_line(template, tmp_path):
    good = template.read_text(encoding="utf-8")
    rng = random.Random(f"{SEED}-text-{template.stem}")
    junk = ["\t", "\x00", "\x07", "é", "🫁", ":", "- ", "{", "[", "]", "&a", "*a", "!!python/object:os.system",
            "'", '"', "\\", "---", "? ", "\r", "\ufeff", "%YAML 9.9", "<<: *x", '"\\x01"', '"\\q"']
    for n in range(50):
        lines = good.splitlines(keepends=True)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(lines))
            operation = rng.randrange(4)
            if operation == 0:
                del lines[i]
            elif operation == 1:
                lines.insert(i, lines[rng.randrange(len(lines))])
            elif operation == 2:
                cut = rng.randrange(len(lines[i]) + 1)
                lines[i] = lines[i][:cut] + rng.choice(junk) + lines[i][cut:]
            else:
                lines[i] = lines[i][:rng.randrange(len(lines[i]) + 1)] + "\n"
        load_or_refuse(write(tmp_path / f"{template.stem}-{n}.yaml", "".join(lines)))


LUNG = next(p for p in TEMPLATES if p.stem == "ct-lung-nodules")


@pytest.mark.parametrize("label, edit", [
    ("empty", lambda t: ""),
    ("null", lambda t: "~\n"),
    ("list", lambda t: "- a\n- b\n"),
    ("two documents", lambda t: t + "\n---\nid: x\n"),
    ("NUL character", lambda t: t.replace("id:", "i\x00d:", 1)),
    ("bell character", lambda t: t.replace("CT lung nodules", "CT \x07 lung", 1)),
    ("escaped control character", lambda t: t.replace("name: CT lung nodules", 'name: "CT\\x01 lung"', 1)),
    ("escaped control in a class", lambda t: t.replace("display_name: Solid nodule", 'display_name: "a\\x0bb"', 1)),
    ("tab indent", lambda t: t.replace("  modalities", "\tmodalities", 1)),
    ("recursive alias", lambda t: "a: &a [*a]\n" + t),
    ("recursive alias in a field", lambda t: t.replace("body_parts: [CHEST]", "body_parts: &b [*b]")),
    ("deep nesting", lambda t: "a: " + "[" * 3000 + "]" * 3000 + "\n" + t),
    ("complex key", lambda t: "? [a, b]\n: 1\n" + t),
    ("python tag", lambda t: "!!python/object/apply:os.system ['true']\n"),
    ("undefined alias", lambda t: t + "\nx: *nope\n"),
    ("huge integer", lambda t: t.replace("min_slices: 20", "min_slices: " + "9" * 5000, 1)),
    ("huge float", lambda t: t.replace("min_slices: 20", "min_slices: 1e999", 1)),
    ("NaN", lambda t: t.replace("center: -600", "center: .nan", 1)),
    ("timestamp version", lambda t: t.replace("version: 1.0.0", "version: 2001-12-14t21:59:43.10-05:00")),
    ("date key", lambda t: t.replace("default_preset: lung", "default_preset: lung\n2020-01-01: 3", 1)),
    ("key with a line break", lambda t: t.replace("name: CT lung nodules", '"na\\nme": x', 1)),
    ("duplicate key", lambda t: t + "\nid: again\n"),
    ("bad regular expression", lambda t: t.replace('"(lung|chest|thorax|abdomen)"', '"a\\n(b"')),
    ("huge string", lambda t: t.replace("name: CT lung nodules", "name: " + "n" * 100000, 1)),
])
def test_nasty_yaml_is_one_line_per_problem(tmp_path, label, edit):
    path = write(tmp_path / "nasty.yaml", edit(LUNG.read_text(encoding="utf-8")))
    load_or_refuse(path)


@pytest.mark.parametrize("label, mutate_", [
    ("NUL character", lambda t: t.replace("id:", "i\x00d:", 1)),
    ("escaped control character", lambda t: t.replace("name: CT lung nodules", 'name: "CT\\x01 lung"', 1)),
    ("recursive alias", lambda t: "a: &a [*a]\n" + t),
    ("huge integer", lambda t: t.replace("min_slices: 20", "min_slices: " + "9" * 5000, 1)),
    ("key with a line break", lambda t: t.replace("name: CT lung nodules", '"na\\nme": x', 1)),
])
def test_damage_that_used_to_crash_or_break_lines_is_refused(tmp_path, label, mutate_):
    path = write(tmp_path / "bad.yaml", mutate_(LUNG.read_text(encoding="utf-8")))
    with pytest.raises(TemplateError):
        load_or_refuse(path) or load_template(path)


def test_text_that_is_not_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(LUNG.read_text(encoding="utf-8").replace("CT lung nodules", "CT poumon \xe9", 1).encode("latin-1"))
    with pytest.raises(TemplateError) as error:
        load_template(path)
    assert error.value.problems == [f"{path}:1: not UTF-8 text (byte 0xe9): save the template as UTF-8"]


def test_lint_and_show_commands_on_a_folder_of_mutants(tmp_path, capsys):
    rng = random.Random(SEED + 9)
    folder = tmp_path / "templates"
    folder.mkdir()
    for n in range(30):
        template = rng.choice(TEMPLATES)
        data = mutate(rng, yaml.safe_load(template.read_text(encoding="utf-8")))
        write(folder / f"m{n}.yaml", yaml.safe_dump(data, allow_unicode=True))
    (folder / "binary.yaml").write_bytes(bytes(range(256)))
    code = main(["templates", "lint", str(folder), "--json"])
    out, err = capsys.readouterr()
    assert code in (0, 1) and err == ""
    results = json.loads(out)
    assert len(results) == 31 and any(not r["ok"] for r in results)
    for result in results:
        assert all(p.startswith(result["path"] + ":") and "\n" not in p for p in result["problems"])
    for path in sorted(folder.iterdir())[:12]:
        code = main(["templates", "show", str(path), rng.choice(["label-config", "instructions", "ohif"])])
        out, err = capsys.readouterr()
        if code == 0:
            assert err == ""
            continue
        assert code == 2 and err.startswith(f"radlabel: error: ") and "Traceback" not in err, err
        lines = err.splitlines()
        assert len(lines) == 1 or all(line.startswith(f"  {path}:") for line in lines[1:]), err
