"""QA figures against named alternatives, on simulated readers (quality, not speed).

1. Drift detection: reads of a reader whose Dice-relative-to-peers starts falling by 0.01 per read
   after read 15 (noise σ 0.03), and of a steady reader over 100 reads; 200 seeded runs each;
   the spread is pooled over a cohort of three readers' phase-I reads, as the report does.
   Ours: the EWMA chart of radlabel/qa/control_chart.py. Alternative: a Shewhart individuals
   chart (3σ below the same phase-I centre, same pooled spread). Figures: median reads from drift start to alert, and
   the share of steady readers alarmed (false alarms).
2. Consensus vs readers: three simulated readers (boundary error 0.08, 0.1, 0.3) on synthetic liver
   CTs; Dice vs truth of the majority consensus against the median reader.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from radlabel.adjudication.consensus import majority  # noqa: E402
from radlabel.adjudication.metrics import mask_agreement  # noqa: E402
from radlabel.phantom import make_ct_study  # noqa: E402
from radlabel.qa.control_chart import baseline_length, control_chart, pooled_sigma  # noqa: E402
from radlabel.qa.simulate import SimulatedReader  # noqa: E402

WINDOW, DRIFT_START, SIGMA = 8, 15, 0.03


def shewhart_alert(values: list[float], cohort_sigma: float) -> int | None:
    baseline = baseline_length(WINDOW)
    x = np.asarray(values)
    centre, sigma = x[:baseline].mean(), max(x[:baseline].std(ddof=1), cohort_sigma, 0.02)
    below = np.nonzero(x[baseline:] < centre - 3 * sigma)[0]
    return int(below[0]) + baseline if below.size else None


def drift_figures(runs: int = 200) -> dict:
    delays = {"ewma": [], "shewhart": []}
    false_alarms = {"ewma": 0, "shewhart": 0}
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        drifting = [rng.normal(0, SIGMA) - 0.01 * max(0, t - DRIFT_START) for t in range(60)]
        steady = list(rng.normal(0, SIGMA, 100))
        cohort = pooled_sigma([list(rng.normal(0, SIGMA, 10)) for _ in range(3)], WINDOW)
        for name, alert in (("ewma", lambda v: control_chart("r", v, WINDOW, relative=v, cohort_sigma=cohort).alert_at),
                            ("shewhart", lambda v: shewhart_alert(v, cohort))):
            at = alert(drifting)
            delays[name].append((at if at is not None else 60) - DRIFT_START)
            false_alarms[name] += alert(steady) is not None
    out = {"benchmark": "qa_drift_detection", "runs": runs,
           "ewma_median_delay_reads": statistics.median(delays["ewma"]),
           "shewhart_median_delay_reads": statistics.median(delays["shewhart"]),
           "ewma_false_alarm_rate": false_alarms["ewma"] / runs,
           "shewhart_false_alarm_rate": false_alarms["shewhart"] / runs}
    out["delay_ratio_shewhart_over_ewma"] = round(out["shewhart_median_delay_reads"] /
                                                  max(out["ewma_median_delay_reads"], 1e-9), 3)
    return out


def consensus_figures(studies: int = 8) -> dict:
    readers = [SimulatedReader("a", 0.08, seed=1), SimulatedReader("b", 0.1, seed=2), SimulatedReader("c", 0.3, seed=3)]
    consensus, median = [], []
    for seed in range(studies):
        study = make_ct_study(seed=900 + seed, slices=12, size=96, pixel_spacing=4.0, slice_spacing=5.0,
                              liver_lesions=2, lung_nodules=0)
        value = {n: v for v, n in study.labels.items()}
        truth = {"liver": np.isin(study.labelmap, [value["liver"], value["liver_lesion"]]),
                 "liver_lesion": study.labelmap == value["liver_lesion"]}
        reads = [r.read(truth) for r in readers]
        spacing = (5.0, 4.0, 4.0)

        def dice(masks):
            return float(np.mean([mask_agreement(masks[k], truth[k], spacing, 2.0).dice for k in truth]))

        consensus.append(dice({k: majority([r[k] for r in reads])[0] for k in truth}))
        median.append(float(np.median([dice(r) for r in reads])))
    return {"benchmark": "qa_consensus_vs_median_reader", "studies": studies,
            "consensus_mean_dice": round(float(np.mean(consensus)), 4),
            "median_reader_mean_dice": round(float(np.mean(median)), 4),
            "ratio": round(float(np.mean(consensus) / np.mean(median)), 4)}


if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    for figures in (drift_figures(), consensus_figures()):
        print(json.dumps(figures))
        (out / f"{figures['benchmark']}.json").write_text(json.dumps(figures, indent=1))
