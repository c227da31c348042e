"""radlabel: one DICOM annotation pipeline across Orthanc, Label Studio and OHIF.

This package holds the domain (geometry, synthetic studies, protocols later) and
the `radlabel` command; `connectors` talks to the outside systems and
`ml_backend` serves pre-labels to Label Studio.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "audit", "brush_rle", "cli", "demo", "dicom_files", "errors", "geometry",
           "http_guard", "phantom", "seg", "settings", "adjudication", "ingest", "protocol", "qa"]
