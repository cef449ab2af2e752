"""Chat clients on a provider that speaks Anthropic Messages."""
