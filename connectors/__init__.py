"""Adapters between radlabel and the outside systems.

- ``stack``: starts and stops the local Orthanc, Label Studio and our servers;
- ``dicomweb``: the DICOMweb client for Orthanc;
- ``samples``: puts sample studies into Orthanc;
- ``hooks``: receives Label Studio webhooks;
- ``viewer``: the same-origin web front that serves OHIF.
"""

__all__ = ["adjudicate", "adjudications", "authorship", "campaign", "copies", "database", "dicomweb",
           "export", "job_handlers", "jobs", "label_studio", "label_studio_accounts", "linkage_register",
           "ports", "projects", "provision", "qa_records", "readers", "samples", "seg_import",
           "service_auth", "state", "sync", "task_index", "wiring", "hooks", "quality", "stack", "viewer"]
