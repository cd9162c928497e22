"""Training jobs: each run is one `python -m jobs.train` process that reports to the registry and its run folder."""
