"""Bedrock models that speak Converse, reached through Anthropic Messages: the request, the answer and the stream in each other's words."""
