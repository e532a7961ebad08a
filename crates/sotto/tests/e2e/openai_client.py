"""End-to-end check of `sotto serve` with the official `openai` Python client.

Run by the `sotto` crate's integration tests against a real daemon and a real model:
    python openai_client.py http://127.0.0.1:PORT/v1 MODEL_ID
Every check raises on failure; the last line printed is `ok <n> checks`.
"""

import json
import sys

import openai
from openai import OpenAI


def main() -> None:
    base_url, model = sys.argv[1], sys.argv[2]
    client = OpenAI(base_url=base_url, api_key=sys.argv[3] if len(sys.argv) > 3 else "unused", max_retries=0)
    checks = 0

    models = client.models.list()
    ids = [m.id for m in models.data]
    assert ids == [model], ids
    checks += 1

    system = "You are a security analyst. Answer briefly."
    chat = client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": "Is `whoami` malicious?"}],
        max_tokens=24,
    )
    answer = chat.choices[0].message.content
    assert chat.choices[0].message.role == "assistant"
    assert answer and answer.strip(), chat
    assert chat.usage.prompt_tokens > 10 and 1 <= chat.usage.completion_tokens <= 24, chat.usage
    assert chat.choices[0].finish_reason in ("stop", "length"), chat.choices[0].finish_reason
    checks += 1

    # The same system prompt again: its KV state comes from the prefix cache.
    again = client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": "Is `ls` malicious?"}],
        max_tokens=8,
    )
    assert again.usage.prompt_tokens_details.cached_tokens > 0, again.usage
    checks += 1

    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Name one Windows binary attackers abuse."}],
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    assert "".join(pieces).strip(), pieces
    assert finish in ("stop", "length"), finish
    assert usage is not None and usage.completion_tokens >= 1, usage
    checks += 1

    schema = {
        "type": "object",
        "properties": {
            "verdict": {"type": "string", "enum": ["malicious", "suspicious", "benign"]},
            "confidence": {"type": "number"},
        },
        "required": ["verdict", "confidence"],
        "additionalProperties": False,
    }
    structured = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Classify `vssadmin delete shadows /all /quiet` as JSON."}],
        max_tokens=48,
        response_format={"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema, "strict": True}},
    )
    verdict = json.loads(structured.choices[0].message.content)
    assert verdict["verdict"] in ("malicious", "suspicious", "benign"), verdict
    assert isinstance(verdict["confidence"], (int, float)), verdict
    assert set(verdict) == {"verdict", "confidence"}, verdict
    checks += 1

    completion = client.completions.create(model=model, prompt="The capital of France is", max_tokens=4)
    assert completion.choices[0].text, completion
    checks += 1

    try:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
        raise AssertionError("an unknown model must be refused")
    except openai.NotFoundError as e:
        assert e.status_code == 404 and "no-such-model" in str(e), e
    checks += 1

    try:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=-1)
        raise AssertionError("negative max_tokens must be refused")
    except openai.BadRequestError as e:
        assert e.status_code == 400 and "max_tokens" in str(e), e
    checks += 1

    print(f"ok {checks} checks")


if __name__ == "__main__":
    main()
