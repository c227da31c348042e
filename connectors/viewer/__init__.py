"""The readers' front: OHIF, the readers' API, the DICOMweb gateway and the Label Studio editor gateway."""

__all__ = ["api", "app", "delivery", "editor", "editor_bundle", "gateway", "image_urls", "outbox", "timing"]
