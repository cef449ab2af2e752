"""A faithful fake of the OpenAI, Anthropic and Amazon Bedrock HTTP APIs for the dev stack and the tests.

It speaks the real wire formats (JSON, server-sent events and AWS event streams) of Chat
Completions, Responses, embeddings, Anthropic Messages and Bedrock's InvokeModel and Converse, with deterministic replies and usage accounting: prompt
caching, reasoning/thinking tokens, tool calls, structured outputs, context-window errors and
injectable faults.
"""

from .app import create_app
from .config import FakeUpstreamConfig
from .server import FakeUpstreamServer
from .tokens import count_tokens

__all__ = ["FakeUpstreamConfig", "FakeUpstreamServer", "count_tokens", "create_app"]
