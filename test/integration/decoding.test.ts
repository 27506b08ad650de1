/**
 * Decoding features through the real engine (seeded Phi-3 test model), driven with the openai
 * SDK on /v1 (where logprobs, logit_bias and n are OpenAI's own parameters) and raw HTTP on the
 * Azure route with `extra-parameters: pass-through`. Random weights: mechanics only.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { Ajv } from "ajv";
import llamaTokenizer from "llama-tokenizer-js";
import { ensureTestModel } from "../../src/model-factory/test-models.ts";
import { startServer, type RunningServer } from "../helpers/start-server.ts";

const KEY = "decoding-key-0123456789";
let server: RunningServer;
let openai: OpenAI;
let modelPath: string;

before(async () => {
  modelPath = await ensureTestModel();
  server = await startServer(["--model", modelPath, "--model-name", "phi-3.5-mini-instruct", "--api-key", KEY, "--parallel", "4"]);
  openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
});
after(async () => server?.close());

type Params = OpenAI.ChatCompletionCreateParamsNonStreaming;
const base = (content = "Tell me something", extra: Partial<Params> = {}): Params => ({
  model: "phi-3.5-mini-instruct",
  messages: [{ role: "user", content }],
  max_tokens: 8,
  temperature: 0,
  ...extra,
});

/** The Phi-3 id of a single-token piece (as reported in logprobs), counted independently of the server. */
function tokenId(piece: string): number {
  const ids = piece.startsWith(" ") ? llamaTokenizer.encode(piece.slice(1), false, true) : llamaTokenizer.encode(piece, false, false);
  assert.equal(ids.length, 1, `${JSON.stringify(piece)} is not one token`);
  return ids[0]!;
}

async function rawChat(body: Record<string, unknown>, headers: Record<string, string> = { "extra-parameters": "pass-through" }) {
  const res = await fetch(`${server.url}/chat/completions`, {
    method: "POST",
    headers: { "api-key": KEY, "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

test("logprobs: one entry per token, top list sorted, top-1 is the greedy pick, logprob ≤ 0", async () => {
  const res = await openai.chat.completions.create(base(undefined, { logprobs: true, top_logprobs: 5 }));
  const content = res.choices[0]!.logprobs!.content!;
  assert.equal(content.length, res.usage!.completion_tokens);
  assert.equal(content.map((c) => c.token).join(""), res.choices[0]!.message.content);
  for (const entry of content) {
    assert.ok(entry.logprob <= 0 && Number.isFinite(entry.logprob));
    assert.equal(entry.top_logprobs.length, 5);
    const tops = entry.top_logprobs.map((t) => t.logprob);
    assert.deepEqual([...tops].sort((a, b) => b - a), tops);
    assert.equal(entry.top_logprobs[0]!.token, entry.token);
    assert.equal(entry.top_logprobs[0]!.logprob, entry.logprob);
    assert.deepEqual(entry.bytes, [...Buffer.from(entry.token, "utf8")]);
  }
});

test("greedy logprobs do not depend on the top list's length (0 and 1 skip the vocabulary sort and take the pick's logprob from the normaliser alone)", async () => {
  const runs = await Promise.all([0, 1, 5].map((top) => openai.chat.completions.create(base(undefined, { logprobs: true, top_logprobs: top }))));
  const [none, one, five] = runs.map((r) => r.choices[0]!.logprobs!.content!);
  assert.equal(runs[0]!.choices[0]!.message.content, runs[2]!.choices[0]!.message.content);
  assert.equal(runs[1]!.choices[0]!.message.content, runs[2]!.choices[0]!.message.content);
  // The same float32 sum in the same (vocabulary) order, whether the maximum comes from the top list or is not needed.
  for (const [i, entry] of five!.entries()) {
    assert.equal(none![i]!.token, entry.token);
    assert.equal(none![i]!.logprob, entry.logprob, `token ${i}`);
    assert.equal(one![i]!.logprob, entry.logprob, `token ${i}`);
    assert.equal(none![i]!.top_logprobs.length, 0);
    assert.equal(one![i]!.top_logprobs.length, 1);
    assert.equal(one![i]!.top_logprobs[0]!.token, entry.top_logprobs[0]!.token);
    assert.equal(one![i]!.top_logprobs[0]!.logprob, one![i]!.logprob);
  }
});

test("logprobs at temperature 1 are the model's distribution: finite, and the chosen token's matches the top list", async () => {
  const res = await openai.chat.completions.create(base(undefined, { temperature: 1, seed: 3, logprobs: true, top_logprobs: 20, max_tokens: 12 }));
  for (const entry of res.choices[0]!.logprobs!.content!) {
    assert.ok(Number.isFinite(entry.logprob) && entry.logprob <= 0);
    const listed = entry.top_logprobs.find((t) => t.token === entry.token);
    if (listed) assert.equal(listed.logprob, entry.logprob);
    else assert.ok(entry.logprob <= entry.top_logprobs.at(-1)!.logprob);
  }
});

test("above temperature 0 a seed draws the same tokens with and without logprobs, with penalties too", async () => {
  const variants: [Partial<Params>, number][] = [[{}, 3], [{ presence_penalty: 1.5, frequency_penalty: 0.5 }, 3], [{ top_p: 0.9 }, 3], [{ temperature: 1 }, 3], [{ temperature: 1 }, 0]];
  for (const [extra, top] of variants) {
    const params = base("Say anything", { temperature: 0.9, seed: 11, max_tokens: 24, ...extra });
    const [plain, withLogprobs] = await Promise.all([openai.chat.completions.create(params), openai.chat.completions.create({ ...params, logprobs: true, top_logprobs: top })]);
    const content = withLogprobs.choices[0]!.logprobs!.content!;
    assert.equal(withLogprobs.choices[0]!.message.content, plain.choices[0]!.message.content, JSON.stringify(extra));
    assert.equal(content.length, withLogprobs.usage!.completion_tokens);
    // The top list is the raw distribution's: sorted, the highest first, and never less likely than the pick when it leaves it out.
    for (const entry of content) {
      const tops = entry.top_logprobs.map((t) => t.logprob);
      assert.deepEqual([...tops].sort((a, b) => b - a), tops);
      assert.ok(tops.reduce((sum, l) => sum + Math.exp(l), 0) <= 1 + 1e-6);
      assert.ok(Number.isFinite(entry.logprob) && entry.logprob <= 0);
      assert.equal(tops.length, top);
      if (top > 0 && !entry.top_logprobs.some((t) => t.token === entry.token)) assert.ok(entry.logprob <= tops.at(-1)!);
    }
  }
});

test("streamed logprobs arrive with their chunks and equal the non-streamed ones", async () => {
  const params = base("Stream me", { logprobs: true, top_logprobs: 2, max_tokens: 10 });
  const whole = await openai.chat.completions.create(params);
  const streamed: OpenAI.ChatCompletionTokenLogprob[] = [];
  let text = "";
  for await (const chunk of await openai.chat.completions.create({ ...params, stream: true })) {
    const choice = chunk.choices[0];
    if (!choice) continue;
    text += choice.delta.content ?? "";
    const entries = choice.logprobs?.content ?? [];
    assert.equal(entries.map((e) => e.token).join(""), choice.delta.content ?? "");
    streamed.push(...entries);
  }
  assert.equal(text, whole.choices[0]!.message.content);
  assert.deepEqual(streamed, whole.choices[0]!.logprobs!.content);
});

test("logit_bias: +100 forces a token, -100 on the greedy token changes it, ids outside the vocabulary → 422", async () => {
  const hello = tokenId(" Hello");
  const forced = await openai.chat.completions.create(base(undefined, { logit_bias: { [hello]: 100 }, max_tokens: 4, logprobs: true }));
  assert.deepEqual(forced.choices[0]!.logprobs!.content!.map((c) => c.token), [" Hello", " Hello", " Hello", " Hello"]);

  const greedy = await openai.chat.completions.create(base(undefined, { max_tokens: 1, logprobs: true }));
  const first = greedy.choices[0]!.logprobs!.content![0]!.token;
  const banned = await openai.chat.completions.create(base(undefined, { max_tokens: 1, logprobs: true, logit_bias: { [tokenId(first)]: -100 } }));
  assert.notEqual(banned.choices[0]!.logprobs!.content![0]!.token, first);
  // The fast path (no logprobs) applies the same bias.
  const fast = await openai.chat.completions.create(base(undefined, { max_tokens: 1, logit_bias: { [tokenId(first)]: -100 } }));
  assert.notEqual(fast.choices[0]!.message.content, greedy.choices[0]!.message.content);

  const bad = await rawChat({ messages: [{ role: "user", content: "x" }], logit_bias: { "40000": 5 } });
  assert.equal(bad.status, 422);
  assert.match(bad.body.error.message, /40000/);
  assert.deepEqual(bad.body.error.details[0].loc, ["body", "logit_bias", "40000"]);
});

test("logit_bias reaches end-of-generation tokens: +100 on <|end|> stops at once", async () => {
  const res = await openai.chat.completions.create(base(undefined, { logit_bias: { 32007: 100 } }));
  assert.equal(res.choices[0]!.finish_reason, "stop");
  assert.equal(res.choices[0]!.message.content, "");
  assert.equal(res.usage!.completion_tokens, 0);
});

test("n=3: three choices, indices 0..2, usage sums the completions; streamed choices interleave and each finishes", async () => {
  const res = await openai.chat.completions.create(base(undefined, { n: 3, temperature: 1, seed: 11, max_tokens: 6 }));
  assert.deepEqual(res.choices.map((c) => c.index), [0, 1, 2]);
  assert.equal(res.usage!.completion_tokens, 18);
  assert.equal(new Set(res.choices.map((c) => c.message.content)).size, 3, "different seeds per choice");

  const texts = ["", "", ""];
  const finished: (string | null)[] = [null, null, null];
  let usage: OpenAI.CompletionUsage | undefined;
  for await (const chunk of await openai.chat.completions.create({ ...base(undefined, { n: 3, temperature: 1, seed: 11, max_tokens: 6 }), stream: true, stream_options: { include_usage: true } })) {
    for (const choice of chunk.choices) {
      texts[choice.index] += choice.delta.content ?? "";
      if (choice.finish_reason) finished[choice.index] = choice.finish_reason;
    }
    usage = chunk.usage ?? usage;
  }
  assert.deepEqual(texts, res.choices.map((c) => c.message.content));
  assert.deepEqual(finished, ["length", "length", "length"]);
  assert.deepEqual(usage, res.usage);

  for (const n of [0, 17]) assert.equal((await rawChat({ messages: [{ role: "user", content: "x" }], n })).status, 422);
});

test("seed: same seed ⇒ same text at temperature 1, streamed or not, and across a restart", async () => {
  const params = base("Once upon a time", { temperature: 1, top_p: 0.9, seed: 424242, max_tokens: 16 });
  const a = await openai.chat.completions.create(params);
  let streamed = "";
  for await (const chunk of await openai.chat.completions.create({ ...params, stream: true })) streamed += chunk.choices[0]?.delta.content ?? "";
  assert.equal(streamed, a.choices[0]!.message.content);
  const other = await openai.chat.completions.create({ ...params, seed: 7 });
  assert.notEqual(other.choices[0]!.message.content, a.choices[0]!.message.content);

  const restarted = await startServer(["--model", modelPath, "--model-name", "phi-3.5-mini-instruct", "--api-key", KEY]);
  try {
    const again = await new OpenAI({ baseURL: `${restarted.url}/v1`, apiKey: KEY, maxRetries: 0 }).chat.completions.create(params);
    assert.equal(again.choices[0]!.message.content, a.choices[0]!.message.content);
  } finally {
    await restarted.close();
  }
});

test("stop strings never appear, streamed or not, even when split across tokens", async () => {
  const free = await openai.chat.completions.create(base("Write a long answer", { max_tokens: 24 }));
  const text = free.choices[0]!.message.content!;
  for (const [from, to] of [[3, 7], [10, 13], [1, 2]] as const) {
    const stop = text.slice(from, to);
    const expected = text.slice(0, text.indexOf(stop));
    const plain = await openai.chat.completions.create(base("Write a long answer", { max_tokens: 24, stop: [stop] }));
    assert.equal(plain.choices[0]!.message.content, expected);
    let streamed = "";
    for await (const chunk of await openai.chat.completions.create({ ...base("Write a long answer", { max_tokens: 24, stop: [stop] }), stream: true })) {
      streamed += chunk.choices[0]?.delta.content ?? "";
    }
    assert.equal(streamed, expected);
    assert.ok(!streamed.includes(stop));
  }
});

test("penalties change the distribution only once a token has been generated", async () => {
  const run = async (frequency_penalty: number, presence_penalty: number) =>
    (await openai.chat.completions.create(base("Repeat", { max_tokens: 3, logprobs: true, top_logprobs: 20, frequency_penalty, presence_penalty }))).choices[0]!.logprobs!.content!;
  const plain = await run(0, 0);
  for (const penalised of [await run(2, 0), await run(0, 2), await run(-2, 0)]) {
    assert.deepEqual(penalised[0], plain[0], "the first step has nothing to penalise");
    assert.notDeepEqual(penalised.slice(1), plain.slice(1));
  }
  for (const value of [2.5, -2.5]) assert.equal((await rawChat({ messages: [{ role: "user", content: "x" }], presence_penalty: value })).status, 422);
});

const SCHEMA = {
  type: "object",
  properties: {
    answer: { enum: ["yes", "no", "maybe"] },
    confidence: { type: "integer" },
    label: { type: "string", maxLength: 8 },
    flags: { type: "array", items: { type: "boolean" }, maxItems: 3 },
  },
  required: ["answer", "confidence", "label", "flags"],
  additionalProperties: false,
};

test("json_schema: output validates (ajv) for 50 seeds at temperature 1; only max_tokens cuts it", async () => {
  const validate = new Ajv().compile(SCHEMA);
  let stopped = 0;
  for (let seed = 0; seed < 50; seed++) {
    const res = await openai.chat.completions.create(base("Answer in JSON", {
      temperature: 1,
      seed,
      max_tokens: 80,
      response_format: { type: "json_schema", json_schema: { name: "answer", schema: SCHEMA, strict: true } },
    }));
    const choice = res.choices[0]!;
    if (choice.finish_reason === "length") {
      assert.equal(res.usage!.completion_tokens, 80);
      continue;
    }
    stopped += 1;
    const value = JSON.parse(choice.message.content!);
    assert.ok(validate(value), `seed ${seed}: ${choice.message.content} ${JSON.stringify(validate.errors)}`);
  }
  assert.ok(stopped >= 40, `only ${stopped}/50 completed`);
});

test("json_object: completed output always parses as JSON", async () => {
  for (let seed = 0; seed < 50; seed++) {
    const res = await rawChat({ messages: [{ role: "user", content: "JSON please" }], temperature: 1, seed, max_tokens: 40, response_format: { type: "json_object" } });
    assert.equal(res.status, 200);
    const choice = res.body.choices[0];
    if (choice.finish_reason === "length") assert.equal(res.body.usage.completion_tokens, 40);
    else assert.doesNotThrow(() => JSON.parse(choice.message.content), choice.message.content);
  }
});

test("json_schema strings hold Unicode scalar values only: byte-fallback tokens pushed by logit_bias cannot spell invalid UTF-8", async () => {
  // Phi-3's byte tokens <0x00>…<0xFF> are ids 3…258. 0xF8 starts no UTF-8 sequence (llama.cpp's lenient reader would
  // take F8 80 80 80 as one code point above U+10FFFF); 0x80 is a continuation byte.
  const byte = (b: number) => String(3 + b);
  const res = await openai.chat.completions.create(base("Name a city", {
    max_tokens: 40,
    logit_bias: { [byte(0xf8)]: 100, [byte(0x80)]: 90 },
    response_format: { type: "json_schema", json_schema: { name: "city", schema: { type: "object", properties: { city: { type: "string", maxLength: 6 } }, required: ["city"], additionalProperties: false }, strict: true } },
  }));
  const content = res.choices[0]!.message.content!;
  assert.doesNotMatch(content, /\uFFFD/, content);
  if (res.choices[0]!.finish_reason === "stop") assert.ok([...(JSON.parse(content) as { city: string }).city].length <= 6, content);
});

test("json_schema keywords outside the supported subset → 422 naming the keyword; logprobs with JSON → 422", async () => {
  const res = await rawChat({ messages: [{ role: "user", content: "x" }], response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "object", properties: { a: { type: "string", pattern: "^a+$" } } } } } });
  assert.equal(res.status, 422);
  assert.match(res.body.error.message, /'pattern'/);
  assert.deepEqual(res.body.error.details[0].loc, ["body", "response_format", "json_schema", "schema", "properties", "a", "pattern"]);
  const both = await rawChat({ messages: [{ role: "user", content: "x" }], logprobs: true, response_format: { type: "json_object" } });
  assert.equal(both.status, 422);
  assert.equal(both.body.error.code, "parameter_not_supported");
});
