"""The openai Python SDK (1.69) against phiserve's /v1 routes.

Usage: python3 openai_samples.py SCENARIO, with PHISERVE_ENDPOINT (the server, without /v1) and
PHISERVE_KEY set; PHISERVE_MODEL names the served model. Prints one JSON object on its last stdout line.
"""
import json
import os
import sys

import openai
from openai import OpenAI

client = OpenAI(base_url=os.environ["PHISERVE_ENDPOINT"] + "/v1", api_key=os.environ["PHISERVE_KEY"], max_retries=0)
MODEL = os.environ.get("PHISERVE_MODEL", "phi-3.5-mini-instruct")
MESSAGES = [{"role": "user", "content": "How many languages are in the world?"}]


def error_of(ex: openai.APIStatusError):
    return {"type": type(ex).__name__, "status": ex.status_code, "code": ex.code, "param": ex.param, "message": ex.message}


def samples():
    out = {"models": [m.id for m in client.models.list().data]}
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_completion_tokens=5, temperature=0)
    out["max_completion_tokens"] = {"completion_tokens": completion.usage.completion_tokens, "finish_reason": completion.choices[0].finish_reason}
    # Streams: usage only when asked, in a last chunk without choices.
    for include_usage in (False, True):
        options = {"stream_options": {"include_usage": True}} if include_usage else {}
        chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=6, temperature=0, stream=True, **options))
        out[f"stream_include_usage_{include_usage}"] = {
            "chunks": len(chunks),
            "usage": [c.usage.model_dump() if c.usage else None for c in chunks],
            "choices": [len(c.choices) for c in chunks],
            "finish_reasons": [c.choices[0].finish_reason if c.choices else None for c in chunks],
        }
    try:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=1)
        out["unknown_model"] = None
    except openai.APIStatusError as ex:
        out["unknown_model"] = error_of(ex)
    return out


def cut_stream():
    """A stream the server cuts: the SDK must raise."""
    out = {"chunks": 0, "finish_reason": None, "raised": None}
    try:
        for chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0, stream=True):
            out["chunks"] += 1
            if chunk.choices and chunk.choices[0].finish_reason:
                out["finish_reason"] = chunk.choices[0].finish_reason
    except openai.APIError as ex:
        out["raised"] = type(ex).__name__
        out["message"] = ex.message
    return out


SCENARIOS = {"samples": samples, "cut-stream": cut_stream}

if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]]()), flush=True)
