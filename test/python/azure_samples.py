"""The Azure docs' Python samples (azure-ai-inference 1.0.0b9) against a running phiserve.

Usage: python3 azure_samples.py SCENARIO, with PHISERVE_ENDPOINT and PHISERVE_KEY set. Prints one
JSON object (what the scenario observed) on its last stdout line; the Node test asserts on it.
The samples are the ones of Microsoft Learn's "How to use Phi-3 chat models" (get_model_info,
complete, streaming, parameters, model_extras, error handling), with `max_tokens` kept small
where the docs leave it out or ask for 2048: the test model has random weights and would write
up to its context size.
"""
import asyncio
import json
import os
import sys

from azure.ai.inference import ChatCompletionsClient
from azure.ai.inference.models import SystemMessage, UserMessage
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import AzureError, HttpResponseError

ENDPOINT = os.environ["PHISERVE_ENDPOINT"]
KEY = os.environ["PHISERVE_KEY"]
MESSAGES = [
    SystemMessage(content="You are a helpful assistant."),
    UserMessage(content="How many languages are in the world?"),
]


def usage_of(usage):
    return None if usage is None else {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens, "total_tokens": usage.total_tokens}


def error_of(ex: HttpResponseError):
    """The docs' error-handling sample: status, then the body's error code and message."""
    body = ex.response.json()
    return {"type": type(ex).__name__, "status": ex.status_code, "code": body["error"]["code"], "message": body["error"]["message"], "error_code": ex.error.code if ex.error else None}


def sync_samples():
    client = ChatCompletionsClient(endpoint=ENDPOINT, credential=AzureKeyCredential(KEY), retry_total=0)
    out = {}
    model_info = client.get_model_info()
    out["model_info"] = {"model_name": model_info.model_name, "model_type": model_info.model_type, "model_provider_name": model_info.model_provider_name}

    response = client.complete(messages=MESSAGES, max_tokens=16)
    out["complete"] = {"role": response.choices[0].message.role, "content": response.choices[0].message.content, "finish_reason": response.choices[0].finish_reason, "model": response.model, "usage": usage_of(response.usage)}

    # Streaming: the docs' print_stream loop (updates with choices only), plus the last usage seen.
    result = client.complete(messages=MESSAGES, temperature=0, top_p=1, max_tokens=16, stream=True)
    text, finish_reason, usage, updates = "", None, None, 0
    for update in result:
        updates += 1
        if update.choices:
            text += update.choices[0].delta.content or ""
            finish_reason = update.choices[0].finish_reason or finish_reason
        usage = update.usage or usage
    out["stream"] = {"text": text, "finish_reason": finish_reason, "usage": usage_of(usage), "updates": updates}
    same = client.complete(messages=MESSAGES, temperature=0, top_p=1, max_tokens=16)
    out["stream"]["non_stream_text"] = same.choices[0].message.content

    # Parameters, as the docs list them (response_format "text": 1.0.0b9's spelling).
    response = client.complete(messages=MESSAGES, presence_penalty=0.1, frequency_penalty=0.8, max_tokens=16, stop=["<|endoftext|>"], temperature=0, top_p=1, response_format="text", seed=42)
    out["parameters"] = {"finish_reason": response.choices[0].finish_reason, "completion_tokens": response.usage.completion_tokens}

    # model_extras: sent with `extra-parameters: pass-through`.
    response = client.complete(messages=MESSAGES, max_tokens=4, model_extras={"logprobs": True})
    logprobs = response.choices[0].get("logprobs")
    out["model_extras"] = {"logprobs": len(logprobs["content"]) if logprobs else None}

    # Error handling: a 4xx raises HttpResponseError carrying the status and the body's code.
    out["errors"] = []
    for kwargs in ({"temperature": 5}, {"max_tokens": 10_000_000}):
        try:
            client.complete(messages=MESSAGES, **kwargs)
            out["errors"].append(None)
        except HttpResponseError as ex:
            out["errors"].append(error_of(ex))
    try:
        # A parameter the API does not define, without `extra-parameters: pass-through`: 400.
        client.complete(body={"messages": [{"role": "user", "content": "z"}], "max_tokens": 1, "top_k": 3})
        out["errors"].append(None)
    except HttpResponseError as ex:
        out["errors"].append(error_of(ex))
    client.close()
    return out


async def async_samples():
    from azure.ai.inference.aio import ChatCompletionsClient as AsyncClient

    out = {}
    async with AsyncClient(endpoint=ENDPOINT, credential=AzureKeyCredential(KEY), retry_total=0) as client:
        info = await client.get_model_info()
        out["model_info"] = {"model_name": info.model_name, "model_type": info.model_type}
        response = await client.complete(messages=MESSAGES, max_tokens=8, temperature=0)
        out["complete"] = {"content": response.choices[0].message.content, "usage": usage_of(response.usage)}
        text, finish_reason, usage = "", None, None
        async for update in await client.complete(messages=MESSAGES, max_tokens=8, temperature=0, stream=True):
            if update.choices:
                text += update.choices[0].delta.content or ""
                finish_reason = update.choices[0].finish_reason or finish_reason
            usage = update.usage or usage
        out["stream"] = {"text": text, "finish_reason": finish_reason, "usage": usage_of(usage)}
        try:
            await client.complete(messages=MESSAGES, temperature=5)
        except HttpResponseError as ex:
            out["error"] = error_of(ex)
    return out


def cut_stream():
    """A stream the server cuts (request timeout, shutdown): the loop must raise, not end quietly."""
    client = ChatCompletionsClient(endpoint=ENDPOINT, credential=AzureKeyCredential(KEY), retry_total=0)
    out = {"updates": 0, "finish_reason": None, "raised": None}
    try:
        for update in client.complete(messages=MESSAGES, temperature=0, stream=True):
            out["updates"] += 1
            if update.choices and update.choices[0].finish_reason:
                out["finish_reason"] = update.choices[0].finish_reason
            if out["updates"] == 1:
                print("first-update", flush=True)
    except AzureError as ex:
        out["raised"] = type(ex).__name__
        out["is_azure_error"] = True
    return out


async def cut_stream_async():
    from azure.ai.inference.aio import ChatCompletionsClient as AsyncClient

    out = {"updates": 0, "finish_reason": None, "raised": None}
    async with AsyncClient(endpoint=ENDPOINT, credential=AzureKeyCredential(KEY), retry_total=0) as client:
        try:
            async for update in await client.complete(messages=MESSAGES, temperature=0, stream=True):
                out["updates"] += 1
                if update.choices and update.choices[0].finish_reason:
                    out["finish_reason"] = update.choices[0].finish_reason
        except AzureError as ex:
            out["raised"] = type(ex).__name__
    return out


class StaticTokenCredential:
    """A TokenCredential handing out one token (the test identity provider's), as DefaultAzureCredential would Entra's."""

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        return AccessToken(os.environ["PHISERVE_TOKEN"], 2**31 - 1)


def entra_token():
    """The docs' Entra ID sample: a bearer token, which azure-core only sends over https."""
    client = ChatCompletionsClient(endpoint=ENDPOINT, credential=StaticTokenCredential(), credential_scopes=["https://ml.azure.com/.default"], retry_total=0)
    try:
        response = client.complete(messages=MESSAGES, max_tokens=3, temperature=0)
        return {"ok": True, "model": response.model, "usage": usage_of(response.usage)}
    except AzureError as ex:
        return {"ok": False, "raised": type(ex).__name__, "message": str(ex)}


SCENARIOS = {
    "entra-token": entra_token,
    "sync": sync_samples,
    "async": lambda: asyncio.run(async_samples()),
    "cut-stream": cut_stream,
    "cut-stream-async": lambda: asyncio.run(cut_stream_async()),
}

if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]]()), flush=True)
