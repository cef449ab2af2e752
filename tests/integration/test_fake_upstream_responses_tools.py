"""Responses API tool calls and structured output, as Codex-style clients use them.

Function tools get ``function_call`` items streamed with ``response.function_call_arguments``
events, custom (free-form) tools get ``custom_tool_call`` items, and a ``function_call_output``
at the end of the input makes the model answer text quoting it.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import openai
import pydantic
import pytest

from devstack.fake_upstream import FakeUpstreamServer, count_tokens

MODEL = "gpt-4o-mini"
SHELL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "command": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "workdir": {"type": ["string", "null"]},
        "timeout_ms": {"type": "integer", "minimum": 1000},
    },
    "required": ["command", "workdir", "timeout_ms"],
    "additionalProperties": False,
}
TOOLS: Any = [
    {"type": "function", "name": "shell", "parameters": SHELL_SCHEMA, "strict": True},
    {"type": "custom", "name": "apply_patch", "description": "Apply a patch to the workspace"},
    {"type": "web_search"},
]


def event_types_and_data(fake: FakeUpstreamServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    url, headers = f"{fake.openai_base_url}/responses", {"authorization": "Bearer k"}
    with httpx.stream("POST", url, json={**body, "stream": True}, headers=headers) as response:
        return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]


def test_a_named_function_tool_is_called_with_valid_arguments(oai: openai.OpenAI) -> None:
    # When the user names the function tool
    response = oai.responses.create(model=MODEL, input="Run the tests with shell.", tools=TOOLS)

    # Then the output is one completed function_call whose arguments fit the schema
    (call,) = response.output
    assert call.type == "function_call" and call.name == "shell" and call.status == "completed"
    assert call.id is not None and call.id.startswith("fc_") and call.call_id.startswith("call_")
    jsonschema.validate(json.loads(call.arguments), SHELL_SCHEMA)
    assert response.usage is not None and response.usage.output_tokens == count_tokens(call.arguments)
    assert response.output_text == ""


def test_function_call_arguments_stream_and_the_sdk_parses_them(fake: FakeUpstreamServer, oai: openai.OpenAI) -> None:
    # Given the same call streamed raw and through the SDK helper
    body = {"model": MODEL, "input": "Run the tests with shell.", "tools": TOOLS}
    events = event_types_and_data(fake, body)
    with oai.responses.stream(**body) as stream:
        final = stream.get_final_response()

    # Then the item is announced with empty arguments, filled by deltas, then closed
    kinds = [event["type"] for event in events]
    deltas = kinds.count("response.function_call_arguments.delta")
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        *["response.function_call_arguments.delta"] * deltas,
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    added, done = events[2]["item"], events[-2]["item"]
    assert added["status"] == "in_progress" and added["arguments"] == "" and added["name"] == "shell"
    joined = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    assert joined == events[-3]["arguments"] == done["arguments"]
    assert {e["item_id"] for e in events[3:-2]} == {added["id"]} and done["call_id"] == added["call_id"]
    # And the SDK rebuilds the call and parses the strict tool's arguments
    (call,) = final.output
    assert call.type == "function_call" and call.arguments == joined
    assert call.parsed_arguments == json.loads(joined)


def test_a_function_call_output_gets_a_text_answer_quoting_it(oai: openai.OpenAI) -> None:
    # Given a call, sent back with its output as Codex does (store=false, whole conversation)
    question: Any = {"role": "user", "content": [{"type": "input_text", "text": "Run the tests with shell."}]}
    first = oai.responses.create(model=MODEL, input=[question], tools=TOOLS, store=False)
    call = first.output[0]
    assert call.type == "function_call"
    result: Any = {"type": "function_call_output", "call_id": call.call_id, "output": "12 passed in 0.4s"}

    # When the conversation continues, then the model answers text quoting the output
    history: Any = [question, call.model_dump(exclude_none=True), result]
    answer = oai.responses.create(model=MODEL, input=history, tools=TOOLS, store=False)
    assert answer.output_text == "The shell tool returned: 12 passed in 0.4s"
    assert [item.type for item in answer.output] == ["message"]


def test_a_custom_tool_gets_free_form_input(fake: FakeUpstreamServer, oai: openai.OpenAI) -> None:
    # Given a custom tool named by the user, plainly and streamed
    response = oai.responses.create(model=MODEL, input="Fix it with apply_patch.", tools=TOOLS)
    events = event_types_and_data(fake, {"model": MODEL, "input": "Fix it with apply_patch.", "tools": TOOLS})

    # Then the output is a custom_tool_call carrying a string input
    (call,) = response.output
    assert call.type == "custom_tool_call" and call.name == "apply_patch" and call.input
    # And its input streams as custom_tool_call_input events
    deltas = [e["delta"] for e in events if e["type"] == "response.custom_tool_call_input.delta"]
    done = next(e for e in events if e["type"] == "response.custom_tool_call_input.done")
    assert "".join(deltas) == done["input"] == call.input

    # When its output comes back, then the model quotes it
    result: Any = {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Patch applied"}
    history: Any = [{"role": "user", "content": "Fix it with apply_patch."}, call.model_dump(exclude_none=True), result]
    assert oai.responses.create(model=MODEL, input=history, tools=TOOLS).output_text == (
        "The apply_patch tool returned: Patch applied"
    )


@pytest.mark.parametrize(
    ("prompt", "choice", "kinds"),
    [
        ("hello", {"type": "function", "name": "shell"}, ["function_call"]),
        ("hello", {"type": "custom", "name": "apply_patch"}, ["custom_tool_call"]),
        ("hello", "required", ["function_call"]),
        ("shell please", "none", ["message"]),
        ("apply_patch, then shell", "auto", ["custom_tool_call", "function_call"]),
        (
            "hello",
            {"type": "allowed_tools", "mode": "required", "tools": [{"type": "custom", "name": "apply_patch"}]},
            ["custom_tool_call"],
        ),
    ],
)
def test_tool_choice_decides_the_output_items(oai: openai.OpenAI, prompt: str, choice: Any, kinds: list[str]) -> None:
    # When the prompt and tool_choice are sent, then the output has exactly these items
    response = oai.responses.create(model=MODEL, input=prompt, tools=TOOLS, tool_choice=choice)
    assert [item.type for item in response.output] == kinds


def test_parallel_tool_calls_false_keeps_one_call(oai: openai.OpenAI) -> None:
    # When two tools are named but parallel calls are off, then only the first named is called
    response = oai.responses.create(
        model=MODEL, input="apply_patch, then shell", tools=TOOLS, parallel_tool_calls=False
    )
    assert [item.type for item in response.output] == ["custom_tool_call"]


def test_an_unknown_forced_tool_is_refused(oai: openai.OpenAI) -> None:
    # When tool_choice forces a tool that is not offered, then it is a 400 on tool_choice
    with pytest.raises(openai.BadRequestError) as error:
        oai.responses.create(model=MODEL, input="hi", tools=TOOLS, tool_choice={"type": "function", "name": "nope"})
    assert error.value.param == "tool_choice"


class Ticket(pydantic.BaseModel):
    title: str
    priority: int
    labels: list[str]
    assignee: str | None


def test_parse_follows_text_format(fake: FakeUpstreamServer, oai: openai.OpenAI) -> None:
    # When a response is parsed into a model, plainly and through the stream helper
    parsed = oai.responses.parse(model=MODEL, input="File a ticket", text_format=Ticket)
    with oai.responses.stream(model=MODEL, input="File a ticket", text_format=Ticket) as stream:
        streamed = stream.get_final_response()

    # Then the text is JSON for the schema the SDK sent as text.format
    assert fake.requests()[0]["body"]["text"]["format"]["type"] == "json_schema"
    assert isinstance(parsed.output_parsed, Ticket) and parsed.output_parsed.labels
    assert streamed.output_parsed == parsed.output_parsed
    assert parsed.text is not None and parsed.text.format is not None and parsed.text.format.type == "json_schema"
