"""Quality of the labels and of the readers: calibration, gold checks, drift, workload, coverage, report.

Domain logic only (no servers): the connector side lives in ``connectors/quality/``.
"""

__all__ = ["certification", "control_chart", "report", "representativeness", "sampling", "scoring",
           "simulate", "workload"]
