"""The ``meterway`` command: bootstrap keys, members and credit, and export usage."""

from meterway.cli.main import main

__all__ = ["main"]
