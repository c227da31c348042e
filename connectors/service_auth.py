"""How Label Studio proves itself to radlabel's servers: names both sides must agree on.

Provisioning writes them into each project (webhook header, ML backend credentials); the hooks server
and the ML backend check them. A module of its own so that provisioning loads neither server.
"""

__all__ = ["ML_USER", "SECRET_HEADER"]

SECRET_HEADER = "X-Radlabel-Secret"  # carries the webhook secret on Label Studio's webhooks to the hooks server
ML_USER = "radlabel-ml"  # Label Studio calls the ML backend with this user and the secret ml_backend_password
