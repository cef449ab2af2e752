from meterway.ledger.models import TokenUsage
from meterway.proxy.formats.chat import read_usage as from_openai
from meterway.proxy.formats.messages import from_anthropic, merge_anthropic


def test_openai_prompt_tokens_include_cached_tokens_which_become_cache_reads():
    # Given OpenAI usage whose prompt_tokens include 1024 cached tokens
    usage = {
        "prompt_tokens": 1500,
        "completion_tokens": 300,
        "total_tokens": 1800,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 200},
    }
    # When it is normalised
    normalised = from_openai(usage)
    # Then the classes do not overlap and add up to the provider's total
    assert normalised == TokenUsage(input_tokens=476, output_tokens=300, reasoning_tokens=200, cache_read_tokens=1024)
    assert normalised.total_tokens == 1800


def test_anthropic_input_excludes_cache_and_keeps_the_ttl_split():
    usage = {
        "input_tokens": 20,
        "output_tokens": 50,
        "cache_creation_input_tokens": 3000,
        "cache_read_input_tokens": 100,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
    }
    normalised = from_anthropic(usage)
    assert normalised.input_tokens == 20
    assert (normalised.cache_creation_5m_tokens, normalised.cache_creation_1h_tokens) == (1000, 2000)
    assert normalised.cache_creation_tokens == 3000
    assert normalised.total_tokens == 20 + 3000 + 100 + 50


def test_anthropic_writes_without_a_split_are_five_minute_writes():
    normalised = from_anthropic({"input_tokens": 5, "output_tokens": 1, "cache_creation_input_tokens": 700})
    assert normalised.cache_creation_5m_tokens == 700
    assert normalised.cache_creation_1h_tokens == 0


def test_stream_delta_usage_overrides_start_usage_but_keeps_what_it_omits():
    start = {"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 1}
    merged = merge_anthropic(start, {"output_tokens": 42})
    assert from_anthropic(merged) == TokenUsage(input_tokens=10, output_tokens=42, cache_read_tokens=90)


def test_garbage_counts_are_treated_as_zero_not_negative():
    assert from_openai({"prompt_tokens": -5, "completion_tokens": "7"}) == TokenUsage()


def test_anthropic_server_side_web_searches_are_read_beside_the_tokens():
    usage = from_anthropic({"input_tokens": 900, "output_tokens": 120, "server_tool_use": {"web_search_requests": 2}})
    assert usage.web_searches == 2 and usage.total_tokens == 1020
    assert from_anthropic({"input_tokens": 1, "output_tokens": 1}).web_searches == 0
