"""Reader instructions (HTML) rendered from a protocol's boundary definitions,
edge cases, window presets and escalation procedure."""

from __future__ import annotations

from html import escape

from radlabel.protocol.template import Protocol


def _rules(cls) -> str:
    if not cls.boundary:
        return ""
    rules = []
    b = cls.boundary
    if b.min_diameter_mm:
        rules.append(f"at least {b.min_diameter_mm:g} mm across")
    if b.max_diameter_mm:
        rules.append(f"at most {b.max_diameter_mm:g} mm across")
    if b.min_volume_mm3:
        rules.append(f"at least {b.min_volume_mm3:g} mm³")
    if b.inside:
        rules.append(f"inside {escape(b.inside)}")
    return escape(" ".join(b.text.split())) + (f" <em>({'; '.join(rules)})</em>" if rules else "")


def instructions_html(protocol: Protocol) -> str:
    p = protocol
    presets = "".join(
        f"<tr><td>{escape(w.name)}</td><td>{w.center:g}</td><td>{w.width:g}</td><td>{escape(w.description)}</td></tr>"
        for w in p.window_presets)
    classes = "".join(
        f"<tr><td><span style='display:inline-block;width:12px;height:12px;background:{c.color}'></span> "
        f"<b>{escape(c.display_name)}</b> <code>{c.name}</code></td>"
        f"<td>{', '.join(g.value for g in c.geometry)}</td><td>{escape(c.read_in)}</td><td>{_rules(c)}</td></tr>"
        for c in p.classes)
    actions = {"label": "Label it", "do_not_label": "Do not label", "flag": "Label and tick the flag",
               "escalate": "Tick the flag and escalate"}
    cases = "".join(
        f"<li><b>{escape(e.id)}</b>: {escape(' '.join(e.text.split()))} — <em>{actions[e.action.value]}</em></li>"
        for e in p.edge_cases)
    triggers = ", ".join(t.value.replace("_", " ") for t in p.escalation.triggers)
    return (
        f"<h3>{escape(p.name)} — protocol {escape(p.id)} {p.version}</h3>"
        f"<p>{escape(' '.join(p.description.split()))}</p>"
        f"<h4>Viewing conditions</h4><p>Slices are shown pre-windowed; each class must be read in its preset. "
        f"Default preset: <b>{escape(p.default_preset)}</b>. Slices are numbered from 1, the most inferior "
        f"(the first along the slice normal): Label Studio's \"N of M\", the OHIF panel and radlabel's reports "
        f"use the same numbers.</p>"
        f"<table><tr><th>preset</th><th>centre</th><th>width</th><th></th></tr>{presets}</table>"
        f"<h4>Classes and boundaries</h4>"
        f"<table><tr><th>class</th><th>geometry</th><th>read in</th><th>boundary</th></tr>{classes}</table>"
        f"<h4>Edge cases</h4><ul>{cases or '<li>none listed</li>'}</ul>"
        f"<h4>Escalation</h4><p>Escalations go to the <b>{p.escalation.route_to.value}</b> reader "
        f"(triggers: {escape(triggers)}). {escape(p.escalation.instructions)} "
        f"Never write patient details in an escalation note.</p>"
        f"<h4>Reading and adjudication</h4><p>{p.readers.per_study} independent reader(s) per series; "
        f"consensus by {p.adjudication.method.value.replace('_', ' ')}; "
        f"below the agreement thresholds the {p.adjudication.arbiter.value} reader arbitrates.</p>"
    )
