"""`make bench`: the bank's figures beside its peers' (django-hordak and a PL/pgSQL floor).

A benchmark is a command, never a timed test: `python -m bench --help`. See docs/benchmarks.md.
"""
