"""Serving the bank: the supervisor that runs its processes (`manage.py serve_bank`)."""
