"""Meterway: a self-hosted LLM API gateway that meters, prices and records every token."""
