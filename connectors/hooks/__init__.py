"""Label Studio's webhooks into radlabel: the hooks server (``app``)."""

__all__ = ["app"]
