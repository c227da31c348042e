"""Quality of the labels and of the readers: calibration, gold checks, drift, workload, coverage, report.

Domain logic only (no servers): the connector side lives in ``connectors/quality/``.
"""
