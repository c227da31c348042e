"""Disagreement analytics: the protocol feedback adjudication produces.

From the stored decisions of one protocol: where readers disagree per class (failed thresholds,
mean pairwise Dice), per reader pair, per edge-case rule (how often it was flagged and how often
those series went to arbitration), and project-wide chance-corrected agreement on findings
(Fleiss' kappa and Krippendorff's alpha per finding).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from radlabel.adjudication.metrics import fleiss_kappa, krippendorff_alpha_nominal


def disagreement_report(decisions: list[dict]) -> dict:
    by_class: dict = defaultdict(lambda: {"pairs": 0, "failed_pairs": 0, "dice": []})
    by_pair: dict = defaultdict(lambda: {"tasks": 0, "dice": []})
    by_rule: dict = defaultdict(lambda: {"flagged": 0, "went_to_arbitration": 0})
    findings_ratings: dict = defaultdict(list)
    arbitrated = 0
    for decision in decisions:
        arbitrated += 0 if decision.get("accepted") else 1
        failed = " ".join(decision.get("reasons", []))
        for name, figures in (decision.get("agreement") or {}).items():
            for pair in figures.get("pairs", []):
                by_class[name]["pairs"] += 1
                by_class[name]["dice"].append(pair["dice"])
                key = "~".join(sorted((str(pair["a"]), str(pair["b"]))))
                by_pair[key]["tasks"] += 1
                by_pair[key]["dice"].append(pair["dice"])
                if f"{name}: readers {pair['a']} and {pair['b']}" in failed:
                    by_class[name]["failed_pairs"] += 1
        for rules in (decision.get("edge_cases") or {}).values():
            for rule in rules:
                by_rule[rule]["flagged"] += 1
                by_rule[rule]["went_to_arbitration"] += 0 if decision.get("accepted") else 1
        readers = decision.get("reader_findings") or {}
        every = sorted({f for chosen in readers.values() for f in chosen})
        for finding in every:
            findings_ratings[finding].append([finding in chosen for chosen in readers.values()])
    classes = {name: {"pairs": v["pairs"], "failed_pairs": v["failed_pairs"],
                      "mean_dice": round(float(np.mean(v["dice"])), 4) if v["dice"] else None}
               for name, v in sorted(by_class.items())}
    pairs = {key: {"tasks": v["tasks"], "mean_dice": round(float(np.mean(v["dice"])), 4)}
             for key, v in sorted(by_pair.items())}
    findings = {}
    for finding, ratings in sorted(findings_ratings.items()):
        panel = [r for r in ratings if len(r) == len(ratings[0])]
        if len(panel) >= 2:
            findings[finding] = {"items": len(panel), "fleiss_kappa": round(fleiss_kappa(panel), 4),
                                 "krippendorff_alpha": round(krippendorff_alpha_nominal(panel), 4)}
    return {"decisions": len(decisions), "arbitrated": arbitrated, "classes": classes, "reader_pairs": pairs,
            "edge_case_rules": dict(sorted(by_rule.items())), "findings": findings}
