"""Benchmarks of twinray's real mode against peer systems (Ray, Dask, multiprocessing)."""
