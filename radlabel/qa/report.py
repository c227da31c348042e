"""``radlabel report``: one self-contained HTML page (inline SVG plots, no network) plus the same figures as JSON.

Sections: summary and alerts, certification, agreement distributions, reader control charts,
disagreement by class and edge-case rule, time and fatigue, cost per geometry, representativeness.
A small script at the end counts the plots the browser actually laid out and writes the count
into ``data-rendered-plots`` on <body>: the test reads it back from headless Chromium.
"""

from __future__ import annotations

import html
import io
import json
import re
from datetime import datetime

import matplotlib
import numpy as np

matplotlib.use("Agg")  # no display: figures are written, never shown
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams["svg.fonttype"] = "none"  # text stays text: smaller files, searchable
plt.rcParams["font.size"] = 9


def _reader_charts(protocol, production: list[dict], names: list[str], tiers: dict[str, str],
                   certified: set[str]) -> dict[str, dict]:
    """Each reader's control chart of scored production reads, against the floor and relative to the peers who
    read the same task (a drift alert when the reader falls away)."""
    from radlabel.qa.control_chart import control_chart, pooled_sigma

    by_task: dict[tuple, dict[str, float]] = {}
    for s in production:
        by_task.setdefault((s["task"], s["source"]), {})[s["reader"]] = s["mean_dice"]

    def versus_peers(s: dict) -> float:
        peers = [v for r, v in by_task[(s["task"], s["source"])].items() if r != s["reader"]]
        return s["mean_dice"] - float(np.mean(peers)) if peers else 0.0

    series = {name: [s["mean_dice"] for s in production if s["reader"] == name] for name in names}
    relative = {name: [versus_peers(s) for s in production if s["reader"] == name] for name in names}
    cohort = pooled_sigma(list(relative.values()), protocol.qa.drift_window)
    readers = {}
    for name in names:
        chart = control_chart(name, series[name], protocol.qa.drift_window, protocol.qa.calibration.pass_thresholds.dice,
                              cohort_sigma=cohort, relative=relative[name])
        readers[name] = {"tier": tiers.get(name), "certified": name in certified, "reads": len(series[name]),
                         "chart": chart.as_dict(), "alert": chart.alert}
    return readers


def build_figures(protocol, *, scores: list[dict], certifications: list[dict], tiers: dict[str, str],
                  decisions: list[dict], profiles: list[dict], reviews: list[dict], counts: dict,
                  unverified: list[dict] | None = None) -> dict:
    """The report's figures from what the pipeline stored: scored reads (time order), certifications,
    readers' tiers, adjudication decisions, acquisition profiles of the labelled series, QA reviews."""
    from radlabel.adjudication.analytics import disagreement_report
    from radlabel.qa.representativeness import representativeness
    from radlabel.qa.workload import fatigue, geometry_cost, measured_cost, time_per_task

    production = [s for s in scores if s["source"] in ("gold", "consensus") and s["mean_dice"] is not None]
    certified = {f"reader-{c['reader']}" for c in certifications if c["certified"]}
    readers = _reader_charts(protocol, production, sorted({s["reader"] for s in scores} | set(tiers)), tiers, certified)
    alerts = [reader["alert"] for reader in readers.values() if reader["alert"]]
    certifications = [c | {"reader_name": f"reader-{c['reader']}"} for c in certifications]
    alerts += [f"reader-{c['reader']} failed certification as {c['tier']}: "
               f"{', '.join(c['failed_classes']) or 'findings'} below the pass thresholds"
               for c in certifications if not c["certified"]]
    fatigue_figures = fatigue(production)
    alerts += [v["signal"] for v in fatigue_figures.values() if v["signal"]]
    agreement: dict[str, list[float]] = {}
    for decision in decisions:
        for name, figures in (decision.get("agreement") or {}).items():
            agreement.setdefault(name, []).extend(p["dice"] for p in figures.get("pairs", []))
    disagreement = disagreement_report(decisions)
    arbitration_rate = disagreement["arbitrated"] / len(decisions) if decisions else 0.0
    representation = representativeness(profiles) if profiles else {"cases": 0, "factors": {}, "warnings": []}
    alerts += representation["warnings"]
    unverified = unverified or []
    if unverified:
        alerts.append(f"{len(unverified)} read(s) not counted: their author is not verified "
                      "(`radlabel reads unverified` lists them)")
    return {"protocol": {"id": protocol.id, "version": protocol.version, "name": protocol.name},
            "generated": datetime.now().astimezone().isoformat(timespec="seconds"),
            "counts": counts | {"adjudicated": len(decisions), "arbitrated": disagreement["arbitrated"],
                                "unverified_reads": len(unverified)},
            "alerts": alerts, "certifications": certifications, "readers": readers,
            "agreement": agreement, "disagreement": disagreement, "time_per_task": time_per_task(production),
            "fatigue": fatigue_figures,
            "cost": {"per_geometry": geometry_cost(protocol, arbitration_rate),
                     "measured": measured_cost(production, tiers, protocol),
                     "arbitration_rate": round(arbitration_rate, 4)},
            "representativeness": representation, "reviews": reviews, "unverified_reads": unverified}


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>", "", text[text.index("<svg"):], flags=re.S)  # creator/date RDF
    return '<div class="plot">' + text + "</div>"


def _agreement_plot(figures: dict) -> str:
    values = figures["agreement"]
    if not values:
        return "<p>No adjudicated series yet.</p>"
    figure, axes = plt.subplots(figsize=(6.5, 2.6))
    axes.hist(list(values.values()), bins=20, range=(0, 1), label=list(values), stacked=False)
    axes.set_xlabel("pairwise Dice between readers")
    axes.set_ylabel("reader pairs")
    axes.legend(fontsize=7)
    return _svg(figure)


def _control_plots(figures: dict) -> str:
    out = []
    for reader, info in figures["readers"].items():
        chart = info.get("chart") or {}
        if not chart.get("values"):
            continue
        figure, axes = plt.subplots(figsize=(6.5, 2.2))
        x = list(range(1, len(chart["values"]) + 1))
        axes.plot(x, chart["values"], "o", ms=3, color="#999", label="read")
        axes.plot(x, chart["rolling"], color="#4363d8", label="rolling mean")
        axes.set_ylim(0, 1.02)
        axes.set_xlabel("production reads in time order")
        axes.set_ylabel("Dice vs reference")
        axes.set_title(f"{reader} ({info.get('tier') or 'tier?'})", fontsize=9)
        axes.legend(fontsize=6, loc="lower left", ncol=2)
        if chart.get("ewma"):
            monitor = axes.twinx()
            monitor.plot(x, chart["ewma"], color="#000", label="EWMA")
            monitor.plot(x, chart["lower_limit"], "--", color="#e6194b", label="lower control limit")
            monitor.set_ylabel("Dice − peers' Dice" if chart.get("relative") else "Dice", fontsize=7)
            if chart.get("relative"):
                monitor.set_ylim(min(-0.3, min(chart["ewma"]) - 0.05), 0.15)
            else:
                monitor.set_ylim(0, 1.02)
            monitor.legend(fontsize=6, loc="lower right", ncol=2)
        if chart.get("alert_at") is not None:
            axes.axvline(chart["alert_at"] + 1, color="#e6194b", lw=2, alpha=0.4)
        out.append(_svg(figure))
    return "".join(out) or "<p>No production reads scored yet.</p>"


def _bar_plot(counts: dict, xlabel: str, title: str) -> str:
    if not counts:
        return ""
    figure, axes = plt.subplots(figsize=(3.2, 1.8))
    axes.barh(list(map(str, counts)), list(counts.values()), color="#3cb44b")
    axes.set_xlabel(xlabel)
    axes.set_title(title, fontsize=9)
    return _svg(figure)


def _cost_plot(rows: list[dict]) -> str:
    if not rows:
        return ""
    figure, axes = plt.subplots(figsize=(6.5, 2.2))
    labels = [f"{r['geometry']} · {r['tier']}" for r in rows]
    axes.barh(labels, [r["cost_per_study"] for r in rows], color="#f58231")
    axes.set_xlabel("cost per study (protocol rates, readers per study + arbitration share)")
    return _svg(figure)


def _table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "<p>None.</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(c)))}</td>" for c in columns) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return "" if value is None else str(value)


_STYLE = """body{font-family:sans-serif;margin:1.5em;max-width:1100px;color:#222}h1{font-size:1.4em}
h2{font-size:1.1em;border-bottom:1px solid #ccc;margin-top:1.6em}table{border-collapse:collapse;font-size:.85em}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}.alert{color:#b00;font-weight:bold}
.plot{display:inline-block;margin:4px}.ok{color:#070}.small{font-size:.8em;color:#666}"""

_CHECK = """<script>
// Counts the plots the browser laid out with a real size (read back by the test in Chromium).
const plots = [...document.querySelectorAll('.plot svg')].filter(s => s.getBoundingClientRect().width > 50);
document.body.dataset.renderedPlots = String(plots.length);
</script>"""


def render_html(figures: dict) -> str:
    p = figures["protocol"]
    alerts = figures["alerts"]
    certs = [{"reader": c["reader_name"], "tier": c["tier"], "certified": "yes" if c["certified"] else "NO",
              "cases": c["cases"], "failed classes": c["failed_classes"],
              "mean Dice": {k: v["dice"] for k, v in c["class_means"].items()}} for c in figures["certifications"]]
    readers = [{"reader": r, "tier": i.get("tier"), "certified": i.get("certified"), "scored reads": i["reads"],
                "latest rolling Dice": (i.get("chart") or {}).get("rolling", [None])[-1] if i["reads"] else None,
                "alert": i.get("alert") or ""} for r, i in figures["readers"].items()]
    dis = figures["disagreement"]
    classes = [{"class": k} | v for k, v in dis.get("classes", {}).items()]
    rules = [{"edge-case rule": k} | v for k, v in dis.get("edge_case_rules", {}).items()]
    times = [{"reader": k} | v for k, v in figures["time_per_task"].items()]
    fatigue = [{"reader": k, "by session time": v["by_session_time"], "by time of day": v["by_time_of_day"],
                "signal": v["signal"] or ""} for k, v in figures["fatigue"].items()]
    rep = figures["representativeness"]
    measured = [{"reader": k} | v for k, v in figures["cost"]["measured"].items()]
    counts = figures["counts"]
    parts = [
        f"<h1>radlabel QA report — {html.escape(p['name'])} <span class=small>{html.escape(p['id'])} "
        f"{html.escape(p['version'])}</span></h1>",
        f"<p class=small>Generated {html.escape(figures['generated'])}. No PHI: readers by pseudonym, cases by "
        "task number.</p>",
        "<h2>Summary</h2>", _table([counts], list(counts)),
        "<h2>Alerts</h2>",
        "".join(f"<p class=alert>{html.escape(a)}</p>" for a in alerts) or "<p class=ok>No alerts.</p>",
        "<h2>Certification</h2>", _table(certs, ["reader", "tier", "certified", "cases", "failed classes", "mean Dice"]),
        "<h2>Readers</h2>", _table(readers, ["reader", "tier", "certified", "scored reads", "latest rolling Dice", "alert"]),
        "<h2>Agreement between readers</h2>", _agreement_plot(figures),
        "<h2>Reader control charts</h2>", _control_plots(figures),
        "<h2>Disagreement by class and edge-case rule</h2>",
        _table(classes, ["class", "pairs", "failed_pairs", "mean_dice"]),
        _table(rules, ["edge-case rule", "flagged", "went_to_arbitration"]),
        "<h2>Time and fatigue</h2>", _table(times, ["reader", "reads", "median_s", "mean_s"]),
        _table(fatigue, ["reader", "by session time", "by time of day", "signal"]),
        "<h2>Cost</h2>", _cost_plot(figures["cost"]["per_geometry"]),
        _table(figures["cost"]["per_geometry"], ["geometry", "tier", "minutes_per_read", "reads_per_study",
                                                  "cost_per_read", "cost_per_study"]),
        _table(measured, ["reader", "tier", "hours", "cost"]),
        "<h2>Representativeness</h2>", f"<p>{rep['cases']} labelled series.</p>",
        "".join(_bar_plot(counts, "series", factor) for factor, counts in rep["factors"].items()),
        "".join(f"<p class=alert>{html.escape(w)}</p>" for w in rep["warnings"]) or "<p class=ok>No thin strata.</p>",
        "<h2>QA review of final labels</h2>",
        _table(figures["reviews"], ["final_task", "reviewer", "verdict", "mean_dice"]),
        "<h2>Reads not counted (author not verified)</h2>",
        _table(figures.get("unverified_reads") or [], ["task", "annotation", "claimed_author", "saved_by", "reason", "at"]),
    ]
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>radlabel QA — {html.escape(p['id'])}"
            f"</title><style>{_STYLE}</style></head><body>{''.join(parts)}{_CHECK}</body></html>")
