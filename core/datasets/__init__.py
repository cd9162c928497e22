"""Datasets: formats, streaming validation and import, the catalog of registered datasets, preview and statistics."""
