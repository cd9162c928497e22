"""Datasets: the studio's internal sample form, format loaders and the on-disk store of registered datasets.

Entry points: ``importer.import_dataset`` / ``validate_dataset``, ``peek.inspect_source`` for the import form,
``limits.check_upload_size`` before accepting an upload, ``split.read_split_info`` for a dataset's eval part.
"""
