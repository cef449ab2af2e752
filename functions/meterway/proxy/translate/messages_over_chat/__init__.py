"""Anthropic Messages clients (Claude Code, the anthropic SDKs) on a provider that speaks Chat."""
