"""The real Claude Code and Codex CLIs, driven by the harness, against the recorder (no local stack):
the harness works, and the clients still send and accept what FINDINGS.md says they do."""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.clients.harness import CODEX_ENV_KEY, InstalledClients, install_clients, run_claude, run_codex
from tests.e2e.clients.recorder import Fault, Options, RunningRecorder, running_recorder

# The first test that needs the clients may install them (about 800 MB from the npm registry).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

CLAUDE_MODEL = "claude-sonnet-4-5"
CODEX_MODEL = "gpt-5-mini"


@pytest.fixture(scope="module")
def clients() -> InstalledClients:
    return install_clients()


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[RunningRecorder]:
    with running_recorder(tmp_path / "recorded") as running:
        yield running


def _headers(record: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in record["headers"]}


def _sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_the_recorders_streams_are_valid_sdk_events(tmp_path: Path) -> None:
    from anthropic.types import Message, RawMessageStreamEvent
    from openai.types.responses import Response, ResponseStreamEvent
    from pydantic import TypeAdapter

    response_event_types = {
        typing.get_args(member.model_fields["type"].annotation)[0]: member
        for member in typing.get_args(typing.get_args(ResponseStreamEvent)[0])
    }
    anthropic_event: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
    options = Options(emit_thinking=True, emit_reasoning=True)
    with running_recorder(tmp_path / "recorded", options) as rec:
        for prompt in ("hello", 'CALL_TOOL shell {"command": "echo hi"}'):
            body: dict[str, Any] = {
                "model": CODEX_MODEL,
                "stream": True,
                "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt}]}],
                "tools": [{"type": "function", "name": "shell", "parameters": {"type": "object"}}],
                "reasoning": {"effort": "low", "summary": "auto"},
                "include": ["reasoning.encrypted_content"],
            }
            events = _sse(httpx.post(f"{rec.base_url}/v1/responses", json=body).text)
            assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
            assert events[0][0] == "response.created" and events[-1][0] == "response.completed"
            for name, data in events:
                assert name == data["type"]
                response_event_types[name].model_validate(data)
            Response.model_validate(httpx.post(f"{rec.base_url}/v1/responses", json=body | {"stream": False}).json())

            body = {
                "model": CLAUDE_MODEL,
                "stream": True,
                "max_tokens": 100,
                "messages": [{"role": "user", "content": [{"type": "text", "text": prompt.replace("shell", "Bash")}]}],
                "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
                "thinking": {"type": "enabled", "budget_tokens": 1024},
            }
            headers = {"anthropic-version": "2023-06-01"}
            events = _sse(httpx.post(f"{rec.base_url}/v1/messages?beta=true", json=body, headers=headers).text)
            assert events[0][0] == "message_start" and events[-1][0] == "message_stop"
            for name, data in events:
                assert name == data["type"]
                if name != "ping":
                    anthropic_event.validate_python(data)
            Message.model_validate(httpx.post(f"{rec.base_url}/v1/messages", json=body | {"stream": False}).json())


def test_claude_code_plain_prompt(clients: InstalledClients, recorder: RunningRecorder) -> None:
    result = run_claude(
        "Say hello", base_url=recorder.base_url, api_key="sk-ant-test", model=CLAUDE_MODEL, clients=clients
    )

    assert result.returncode == 0, result.describe()
    assert result.json is not None and result.json["is_error"] is False, result.describe()
    assert result.result_text == f"recorder reply 1 model={CLAUDE_MODEL}"
    [record] = recorder.records  # nothing else: no count_tokens, no model listing, no telemetry
    assert (record["method"], record["path"], record["query"]) == ("POST", "/v1/messages", "beta=true")
    headers = _headers(record)
    assert headers["x-api-key"] == "sk-ant-test" and "authorization" not in headers
    assert headers["anthropic-version"] == "2023-06-01"
    assert "claude-code-20250219" in headers["anthropic-beta"].split(",")
    body = record["body"]
    assert body["model"] == CLAUDE_MODEL and body["stream"] is True
    assert body["messages"][-1]["content"][-1] == {
        "type": "text",
        "text": "Say hello",
        "cache_control": {"type": "ephemeral"},
    }


def test_claude_code_bearer_auth(clients: InstalledClients, recorder: RunningRecorder) -> None:
    result = run_claude(
        "Say hello", base_url=recorder.base_url, api_key="tok-test", model=CLAUDE_MODEL, auth="bearer", clients=clients
    )

    assert result.returncode == 0, result.describe()
    headers = _headers(recorder.records[0])
    assert headers["authorization"] == "Bearer tok-test" and "x-api-key" not in headers


def test_claude_code_tool_round_trip(clients: InstalledClients, recorder: RunningRecorder, tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("contents-from-the-file-42\n")
    prompt = "CALL_TOOL Read " + json.dumps({"file_path": str(note)})

    result = run_claude(
        prompt, base_url=recorder.base_url, api_key="sk-ant-test", model=CLAUDE_MODEL, cwd=tmp_path, clients=clients
    )

    assert result.returncode == 0, result.describe()
    assert result.result_text is not None and result.result_text.startswith("TOOL_RESULT_SEEN")
    assert "contents-from-the-file-42" in result.result_text
    first, second = recorder.records
    assert "Read" in {tool["name"] for tool in first["body"]["tools"]}
    assistant, user = second["body"]["messages"][-2:]
    [tool_use] = assistant["content"]
    assert tool_use["type"] == "tool_use" and tool_use["name"] == "Read"
    assert tool_use["input"] == {"file_path": str(note)}
    [tool_result] = user["content"]
    assert tool_result["type"] == "tool_result" and tool_result["tool_use_id"] == tool_use["id"]


def test_claude_code_retries_a_500_then_reports_it(clients: InstalledClients, recorder: RunningRecorder) -> None:
    recorder.set_faults(Fault(status=500, times=100))

    result = run_claude(
        "Say hello",
        base_url=recorder.base_url,
        api_key="sk-ant-test",
        model=CLAUDE_MODEL,
        max_retries=1,
        clients=clients,
    )

    assert result.returncode == 1, result.describe()
    assert result.json is not None and result.json["is_error"] is True
    assert result.json["api_error_status"] == 500
    assert len(recorder.records) == 2  # CLAUDE_CODE_MAX_RETRIES=1: one retry


def test_codex_plain_prompt(clients: InstalledClients, recorder: RunningRecorder) -> None:
    result = run_codex("Say hello", base_url=recorder.base_url, api_key="mw-test", model=CODEX_MODEL, clients=clients)

    assert result.returncode == 0, result.describe()
    assert result.result_text == f"recorder reply 1 model={CODEX_MODEL}"
    [record] = recorder.records
    assert (record["method"], record["path"], record["query"]) == ("POST", "/v1/responses", "")
    headers = _headers(record)
    assert headers["authorization"] == "Bearer mw-test"
    assert headers["accept"] == "text/event-stream"
    body = record["body"]
    assert body["model"] == CODEX_MODEL and body["stream"] is True and body["store"] is False
    assert body["include"] == ["reasoning.encrypted_content"]
    assert body["reasoning"] == {"effort": "low", "summary": "auto"}
    assert body["input"][-1] == {
        "type": "message",
        "id": body["input"][-1]["id"],
        "role": "user",
        "content": [{"type": "input_text", "text": "Say hello"}],
    }


def test_codex_function_call_round_trip(clients: InstalledClients, recorder: RunningRecorder, tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_text("codex-read-this-99\n")
    prompt = "CALL_TOOL exec_command " + json.dumps({"cmd": "cat note.txt"})

    result = run_codex(
        prompt, base_url=recorder.base_url, api_key="mw-test", model=CODEX_MODEL, cwd=tmp_path, clients=clients
    )

    assert result.returncode == 0, result.describe()
    assert result.result_text is not None and "codex-read-this-99" in result.result_text
    first, second = recorder.records
    assert "exec_command" in {tool.get("name") for tool in first["body"]["tools"]}
    call, output = second["body"]["input"][-2:]
    assert call["type"] == "function_call" and call["name"] == "exec_command"
    assert json.loads(call["arguments"]) == {"cmd": "cat note.txt"}
    assert output["type"] == "function_call_output" and output["call_id"] == call["call_id"]
    assert "codex-read-this-99" in output["output"]


def test_codex_retries_a_500_then_reports_it(clients: InstalledClients, recorder: RunningRecorder) -> None:
    recorder.set_faults(Fault(status=500, times=100))

    result = run_codex(
        "Say hello",
        base_url=recorder.base_url,
        api_key="mw-test",
        model=CODEX_MODEL,
        request_max_retries=1,
        stream_max_retries=0,
        clients=clients,
    )

    assert result.returncode == 1, result.describe()
    assert len(recorder.records) == 2  # request_max_retries=1, stream_max_retries=0
    assert CODEX_ENV_KEY not in result.stderr
