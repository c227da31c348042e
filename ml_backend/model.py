"""The model interface the server calls (the label-studio-ml-backend shape)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Prediction:
    """One task's prediction as Label Studio stores it."""

    result: list[dict] = field(default_factory=list)
    score: float = 0.0
    model_version: str = ""
    offered: bool = True  # False: no model covers the protocol's classes, so Label Studio gets no prediction at all

    def as_answer(self) -> dict | list:
        """The task's entry in a /predict answer: Label Studio stores one prediction per object of a list, so an
        empty list stores none (no empty prediction tab at 0 % for a protocol without a model)."""
        return self.as_dict() if self.offered else []

    def as_dict(self) -> dict:
        return {"result": self.result, "score": self.score, "model_version": self.model_version}


class Model:
    """Base model: proposes nothing. Pre-labellers override ``predict`` and ``fit``."""

    version = "radlabel-empty-0"

    def setup(self, project: str, label_config: str, extra: dict | None = None) -> str:
        """Called when Label Studio connects a project; returns the model version."""
        return self.version

    def predict(self, tasks: list[dict], label_config: str, context: dict | None = None) -> list[Prediction]:
        return [Prediction(model_version=self.version) for _ in tasks]

    def safe_predict(self, task: dict, label_config: str, context: dict | None = None) -> Prediction:
        """One task's prediction; models that can fail on a task override this to answer empty instead."""
        return self.predict([task], label_config, context)[0]

    def fit(self, event: str, payload: dict) -> dict:
        """Learn from an annotation event; returns a short status."""
        return {"status": "ignored", "event": event}
