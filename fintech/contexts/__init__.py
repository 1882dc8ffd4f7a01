"""Bounded contexts as the bank lays them out: the shape every app under `apps/` has
(`shape`), and `manage.py startcontext <name>`, which gives a new context that shape."""
