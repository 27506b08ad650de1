import { test } from "node:test";
import assert from "node:assert/strict";
import { AppError } from "../errors/app-error.ts";
import { toStreamUsage } from "./stream-usage.ts";
import { StreamChunks } from "./to-protocol.ts";

const META = { id: "abc", created: 1, model: "Phi-3.5-Mini-Instruct" };
const USAGE = { promptTokens: 7, completionTokens: 3 };

test("the usage rule: Azure always on the finish chunk; OpenAI only with include_usage", () => {
  assert.equal(toStreamUsage("azure", true, undefined), "finish-chunk");
  assert.equal(toStreamUsage("azure", true, { include_usage: false }), "finish-chunk");
  assert.equal(toStreamUsage("openai", true, undefined), "none");
  assert.equal(toStreamUsage("openai", true, null), "none");
  assert.equal(toStreamUsage("openai", true, {}), "none");
  assert.equal(toStreamUsage("openai", true, { include_usage: false }), "none");
  assert.equal(toStreamUsage("openai", true, { include_usage: true }), "usage-chunk");
});

test("bad stream_options on the OpenAI route are 422 naming the field", () => {
  const refused = (options: unknown, stream = true) =>
    assert.throws(() => toStreamUsage("openai", stream, options), (e: unknown) => e instanceof AppError && e.code === "INVALID_REQUEST" && e.param === "stream_options");
  refused("yes");
  refused([true]);
  refused({ include_usage: "true" });
  refused({ include_usage: true }, false);
});

test("Azure's shape: usage rides on the last finish chunk, no usage key elsewhere", () => {
  const chunks = new StreamChunks(META, "finish-chunk");
  assert.equal("usage" in chunks.role(0), false);
  assert.equal("usage" in chunks.content(0, "hi", undefined), false);
  assert.deepEqual(chunks.end(1, "stop", undefined).map((c) => "usage" in c), [false]);
  const [last, ...rest] = chunks.end(0, "length", USAGE);
  assert.equal(rest.length, 0);
  assert.equal(last!.choices[0]!.finish_reason, "length");
  assert.deepEqual(last!.usage, { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 });
});

test("OpenAI's include_usage shape: usage null on every chunk, then one choices-less chunk with it", () => {
  const chunks = new StreamChunks(META, "usage-chunk");
  assert.equal(chunks.role(0).usage, null);
  assert.equal(chunks.toolCalls(0, [{ id: "call_1", name: "f", arguments: "{}" }]).usage, null);
  assert.deepEqual(chunks.end(1, "stop", undefined).map((c) => c.usage), [null]);
  const [finish, usage, ...rest] = chunks.end(0, "stop", USAGE);
  assert.equal(rest.length, 0);
  assert.equal(finish!.usage, null);
  assert.equal(finish!.choices[0]!.finish_reason, "stop");
  assert.deepEqual(usage, { id: "abc", object: "chat.completion.chunk", created: 1, model: META.model, choices: [], usage: { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 } });
});

test("OpenAI without include_usage: no usage anywhere", () => {
  const chunks = new StreamChunks(META, "none");
  const all = [chunks.role(0), chunks.content(0, "x", undefined), ...chunks.end(0, "stop", USAGE)];
  assert.equal(all.length, 3);
  assert.ok(all.every((c) => !("usage" in c)));
});
