"""radlabel's Label Studio ML backend: a model class with setup/predict/fit,
and the Flask server around it (``ml_backend.app``)."""

__all__ = ["app", "classical", "interactive", "model", "network", "prelabel", "trainer", "validation",
           "volumes"]
