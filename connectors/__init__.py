"""Adapters between radlabel and the outside systems.

- ``stack``: starts and stops the local Orthanc, Label Studio and our servers;
- ``dicomweb``: the DICOMweb client for Orthanc;
- ``samples``: puts sample studies into Orthanc;
- ``hooks``: receives Label Studio webhooks;
- ``viewer``: the same-origin web front that serves OHIF.
"""
