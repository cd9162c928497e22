"""Datasets: the studio's internal sample form, format loaders and the on-disk store of registered datasets."""
