"""Deployer-side tools; not part of the deployed package."""
