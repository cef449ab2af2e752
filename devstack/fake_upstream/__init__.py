"""A faithful fake of the OpenAI and Anthropic HTTP APIs for the dev stack and the tests.

It speaks the real wire formats (JSON and server-sent events) of Chat Completions, Responses,
embeddings and Anthropic Messages, with deterministic replies and usage accounting: prompt
caching, reasoning/thinking tokens, tool calls, structured outputs, context-window errors and
injectable faults.
"""

from .app import create_app
from .config import FakeUpstreamConfig
from .server import FakeUpstreamServer
from .tokens import count_tokens

__all__ = ["FakeUpstreamConfig", "FakeUpstreamServer", "count_tokens", "create_app"]
