"""Is the labelled set representative? Strata of acquisition, and those too thin to train on.

A series' acquisition profile is taken at sync time from the source headers and kept in its task:
manufacturer, scanner model, a keyed pseudonym of the site (never the institution's name),
slice thickness, reconstruction kernel and contrast. A stratum is thin when it holds fewer than
``MIN_CASES`` cases or less than ``MIN_SHARE`` of the set: a model will see too little of it
(domain shift at deployment).
"""

from __future__ import annotations

from collections import Counter

MIN_CASES = 5
MIN_SHARE = 0.05
FACTORS = ("manufacturer", "scanner", "site", "slice_thickness", "kernel", "contrast")


def thickness_band(mm: float | None) -> str:
    if not mm:
        return "unknown"
    return "≤1.5 mm" if mm <= 1.5 else "1.5–3 mm" if mm <= 3 else "3–5 mm" if mm <= 5 else ">5 mm"


def acquisition_profile(dataset, site_pseudonym: str) -> dict:
    """The stratum facts of a series from its first instance (no identifying value)."""
    thickness = dataset.get("SliceThickness")
    return {"manufacturer": str(dataset.get("Manufacturer", "") or "unknown"),
            "scanner": str(dataset.get("ManufacturerModelName", "") or "unknown"),
            "site": site_pseudonym,
            "slice_thickness_mm": float(thickness) if thickness not in (None, "") else None,
            "kernel": str(dataset.get("ConvolutionKernel", "") or "unknown"),
            "contrast": bool(str(dataset.get("ContrastBolusAgent", "") or "").strip())}


def representativeness(profiles: list[dict]) -> dict:
    total = len(profiles)
    factors, warnings = {}, []
    for factor in FACTORS:
        if factor == "slice_thickness":
            values = [thickness_band(p.get("slice_thickness_mm")) for p in profiles]
        elif factor == "contrast":
            values = ["contrast" if p.get("contrast") else "non-contrast" for p in profiles]
        else:
            values = [str(p.get(factor) or "unknown") for p in profiles]
        counts = Counter(values)
        factors[factor] = dict(counts.most_common())
        for value, n in counts.items():
            if n < MIN_CASES or n / total < MIN_SHARE:
                warnings.append(f"{factor} {value}: {n} of {total} cases — too few to train on "
                                f"(at least {MIN_CASES} and {MIN_SHARE:.0%} wanted)")
    return {"cases": total, "factors": factors, "warnings": warnings}
