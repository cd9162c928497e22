"""The SQLite store: the registry of runs, datasets and calibration points, its schema and migrations."""
