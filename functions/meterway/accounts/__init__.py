"""Accounts and limits: API and admin keys (stored as hashes), members, prepaid credit, and the
per-key limits every request reserves against; the ``/api/keys``, ``/api/members`` and
``/api/balance`` routes."""
