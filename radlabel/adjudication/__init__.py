"""Adjudication of readers' reads: agreement metrics, consensus, the decision and its reasons."""

__all__ = ["analytics", "consensus", "decision", "labelmaps", "metrics", "reads"]
