"""The OHIF-side configuration of a protocol: presets, segments (names, colours,
DICOM codes), edge cases and escalation — what the OHIF extension consumes."""

from __future__ import annotations

from radlabel.protocol.content import CodedConcept
from radlabel.protocol.enum import Geometry
from radlabel.protocol.template import Protocol


def _code(concept: CodedConcept | None) -> dict | None:
    if concept is None:
        return None
    return {"CodeValue": concept.value, "CodingSchemeDesignator": concept.scheme, "CodeMeaning": concept.meaning}


def segment_classes(protocol: Protocol):
    """Classes that become DICOM-SEG segments, numbered from 1 in template order."""
    return [c for c in protocol.classes if {Geometry.MASK, Geometry.POLYGON} & set(c.geometry)]


def ohif_config(protocol: Protocol) -> dict:
    return {
        "protocol": {"id": protocol.id, "name": protocol.name, "version": protocol.version,
                     "fingerprint": protocol.fingerprint},
        "windowPresets": [
            {"name": w.name, "windowCenter": w.center, "windowWidth": w.width, "modality": w.modality,
             "description": w.description}
            for w in protocol.window_presets
        ],
        "defaultPreset": protocol.default_preset,
        "segments": [
            {
                "segmentNumber": number,
                "name": c.name,
                "label": c.display_name,
                "color": list(c.rgb),
                "readIn": c.read_in,
                "category": _code(c.category),
                "type": _code(c.type),
                "typeModifier": _code(c.type_modifier),
                "anatomicRegion": _code(c.anatomic_region),
                "boundary": c.boundary.text if c.boundary else "",
            }
            for number, c in enumerate(segment_classes(protocol), 1)
        ],
        "otherClasses": [
            {"name": c.name, "label": c.display_name, "color": list(c.rgb), "geometry": [g.value for g in c.geometry],
             "readIn": c.read_in}
            for c in protocol.classes if c not in segment_classes(protocol)
        ],
        "edgeCases": [{"id": e.id, "text": e.text, "action": e.action.value} for e in protocol.edge_cases],
        "escalation": {"routeTo": protocol.escalation.route_to.value,
                       "triggers": [t.value for t in protocol.escalation.triggers]},
    }
