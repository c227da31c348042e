"""Ingest of a series: validation, de-identification of headers and pixels, faces, linkage, rendering."""

__all__ = ["burned_in", "deface", "deid", "deid_tables", "pixel_regions", "release", "render", "series",
           "validate"]
