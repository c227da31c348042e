"""Checks of coded concepts (SNOMED CT, DICOM) used for DICOM-SEG segment properties.

SNOMED CT identifiers carry a Verhoeff check digit and a partition identifier;
a concept known to pydicom's DICOM code dictionary must also carry one of its
known meanings, and a segmentation category must come from CID 7150
(Segmentation Property Categories).
"""

from __future__ import annotations

from functools import lru_cache

_VERHOEFF_D = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]
_VERHOEFF_P = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]
SEGMENTATION_CATEGORY_CID = 7150


def verhoeff_valid(number: str) -> bool:
    check = 0
    for position, digit in enumerate(reversed(number)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[position % 8][int(digit)]]
    return check == 0


@lru_cache(maxsize=None)
def _dictionary(scheme: str) -> dict[str, tuple[set[str], set[int]]]:
    """code value -> (known meanings, lower-cased; CIDs it belongs to) from pydicom."""
    from pydicom.sr._concepts_dict import concepts

    table: dict[str, tuple[set[str], set[int]]] = {}
    for entries in concepts.get(scheme, {}).values():
        for value, (meaning, cids) in entries.items():
            meanings, groups = table.setdefault(value, (set(), set()))
            meanings.add(meaning.lower())
            groups.update(cids)
    return table


def known_meanings(scheme: str, value: str) -> set[str]:
    return _dictionary(scheme).get(value, (set(), set()))[0]


def in_context_group(scheme: str, value: str, cid: int) -> bool:
    return cid in _dictionary(scheme).get(value, (set(), set()))[1]


def check_code(scheme: str, value: str, meaning: str) -> str | None:
    """None when the code is valid, else what is wrong with it (a phrase)."""
    if scheme in ("SCT", "SRT"):
        if not value.isdigit() or not 6 <= len(value) <= 18:
            return f"SNOMED CT code {value!r} must be 6 to 18 digits"
        if value[-3:-1] not in ("00", "10"):
            return f"SNOMED CT code {value} is not a concept identifier (partition {value[-3:-1]})"
        if not verhoeff_valid(value):
            return f"SNOMED CT code {value} fails its check digit (a typo?)"
    elif scheme == "DCM":
        if not value.isdigit():
            return f"DCM code {value!r} must be digits"
    meanings = known_meanings("SCT" if scheme == "SRT" else scheme, value)
    if meanings and meaning.lower() not in meanings:
        return f"{scheme} {value} means {sorted(meanings)[0]!r}, not {meaning!r}"
    return None


def concept_for_name(name: str, scheme: str = "SCT") -> tuple[str, str] | None:
    """(code value, meaning) of a structure named like 'vertebrae_T12' or 'liver', when DICOM knows it."""
    from pydicom.sr._concepts_dict import concepts

    table = concepts.get(scheme, {})
    words = [w for w in name.replace("-", "_").lower().split("_") if w]
    plain = [w for w in words if w not in ("left", "right") and not w.isdigit()]
    if plain != words:  # lateral or numbered structures: the structure itself
        found = concept_for_name("_".join(plain), scheme) if plain else None
        if found:
            return found
    candidates = ["".join(w.capitalize() for w in words), "".join(w.capitalize() for w in reversed(words))]
    if len(words) == 2 and words[0].startswith("vertebra"):
        candidates.append(words[1].upper() + "Vertebra")
    if words and words[-1].endswith("s"):  # plural: ribs, cartilages
        candidates.append("".join(w.capitalize() for w in words)[:-1])
    for keyword in candidates:
        entry = table.get(keyword)
        if entry:
            value, (meaning, _) = next(iter(entry.items()))
            return value, meaning
    return None
