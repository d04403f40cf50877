"""The one control plane: GCS, schedulers, object store accounting and owners, sans-I/O.

Everything in this package is plain, deterministic Python. It does no I/O, starts no
threads or processes, reads no clock and uses no global randomness: time arrives as an
argument, randomness as an injected seeded ``random.Random``, ids come from counters.
Components react to events (``handle(event, now, out)``) by appending commands to ``out``;
a host (the SimPy world in ``sim/`` or the process world in ``runtime/real/``) turns the
commands into effects and feeds the results back as events.
"""
