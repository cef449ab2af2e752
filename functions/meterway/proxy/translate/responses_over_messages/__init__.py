"""OpenAI Responses clients (Codex CLI, ``client.responses``) on a provider that speaks Anthropic Messages."""
