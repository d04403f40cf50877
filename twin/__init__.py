"""The twin harness: runs a scenario on real workers, beside the simulation, and calibrates.

It depends on both worlds: the simulator (`sim`, which knows nothing of real processes)
and the real runtime (`runtime`). `run-scenario` is `twin.cli`.
"""
