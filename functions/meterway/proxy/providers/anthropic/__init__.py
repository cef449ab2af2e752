"""The Anthropic provider (``provider.Anthropic``) and its translation between Chat and Messages."""
