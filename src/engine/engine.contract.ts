/**
 * The engine contract, as one suite every engine implementation runs (the fake engine always, the
 * llama.cpp engine on a seeded test model; the ONNX vision and remote engines plug in the same
 * way). It pins what the layers above rely on: the life cycle, which events come in what order,
 * exact token accounting, seeded determinism, logprobs, and cancellation that frees the sequence.
 * Engines are built through their factory, as the composition root builds them.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { Cancellation } from "../lib/cancellation.ts";
import type { Engine, EngineEvent, GenerationRequest } from "./engine.ts";
import type { EngineFactory, EnginePlan } from "./engine-factory.ts";

export interface EngineContractSubject {
  /** Suite name, e.g. "fake" or "llama.cpp". */
  name: string;
  factory: () => Promise<EngineFactory>;
  /** A model the factory can serve. */
  modelPath: () => Promise<string>;
  /** A prompt in the model's template. */
  prompt: string;
  /** A special token's text in the model's vocabulary (e.g. `<|end|>`), for the literal-span checks; none: skipped. */
  specialToken?: string | undefined;
}

const SEQUENCES = 2;

function plan(modelPath: string, overrides: Partial<EnginePlan> = {}): EnginePlan {
  return {
    modelPath, modelContextLength: undefined, contextSize: 256, parallel: SEQUENCES, threads: 1, batchSize: 512, decodeBatch: undefined,
    gpu: "cpu", extraStopTokens: [], logger: pino({ level: "silent" }), ...overrides,
  };
}

async function collect(events: AsyncIterable<EngineEvent>): Promise<EngineEvent[]> {
  const out: EngineEvent[] = [];
  for await (const event of events) out.push(event);
  return out;
}

const tokensOf = (events: readonly EngineEvent[]) => events.reduce((sum, e) => sum + (e.type === "done" ? 0 : e.tokenCount), 0);
const textOf = (events: readonly EngineEvent[]) => events.map((e) => (e.type === "token" ? e.text : "")).join("");

export function runEngineContract(subject: EngineContractSubject): void {
  let engine: Engine;
  let factory: EngineFactory;
  let modelPath: string;
  const request = (extra: Partial<GenerationRequest> = {}): GenerationRequest => ({
    prompt: subject.prompt, maxTokens: 8, temperature: 0, topP: 1, presencePenalty: 0, frequencyPenalty: 0, ...extra,
  });

  before(async () => {
    factory = await subject.factory();
    modelPath = await subject.modelPath();
    engine = await factory.create(plan(modelPath));
  });
  after(async () => engine?.close());

  test(`${subject.name}: built unloaded with the planned capacity; load() makes it ready with the model's facts`, async () => {
    assert.equal(engine.isReady(), false);
    assert.equal(engine.capacity().sequences, SEQUENCES);
    assert.ok(engine.capacity().memoryBytes >= 0);
    await engine.load();
    assert.equal(engine.isReady(), true);
    const info = engine.modelInfo();
    assert.ok(info.contextLength > 0 && info.contextLength <= 256 * SEQUENCES, `context ${info.contextLength}`);
    assert.ok(info.vocabSize > 0);
    assert.equal(typeof info.bosToken, "string");
    assert.equal(typeof info.eosToken, "string");
    assert.equal(typeof info.addBosToken, "boolean");
    const facts = await factory.describe(modelPath);
    assert.equal(typeof facts, "object");
  });

  test(`${subject.name}: countTokens is exact and stable`, async () => {
    const { tokens: count, exact } = await engine.countTokens({ prompt: subject.prompt }, 256);
    assert.ok(Number.isInteger(count) && count > 0);
    assert.equal(exact, true);
    assert.deepEqual(await engine.countTokens({ prompt: subject.prompt }, 256), { tokens: count, exact: true });
    assert.ok((await engine.countTokens({ prompt: subject.prompt + subject.prompt }, 256)).tokens > count);
  });

  test(`${subject.name}: a prompt over the limit is counted over it, exactly or as a lower bound`, async () => {
    const huge = subject.prompt.repeat(2000);
    const { tokens: one } = await engine.countTokens({ prompt: subject.prompt }, 256);
    const count = await engine.countTokens({ prompt: huge }, 10);
    assert.ok(count.tokens > 10);
    if (count.exact) assert.equal(count.tokens, one * 2000);
    else assert.ok(count.tokens <= one * 2000, `a lower bound: ${count.tokens}`);
  });

  test(`${subject.name}: generate evaluates exactly the tokens countTokens counts, literal spans included`, async () => {
    const spans = [{ prompt: subject.prompt }, { prompt: subject.prompt, literalSpans: [{ start: 1, end: subject.prompt.length - 1 }] }];
    for (const prompt of spans) {
      const { tokens } = await engine.countTokens(prompt, 256);
      const before = engine.stats();
      await collect(engine.generate(request({ ...prompt, maxTokens: 1 }), new Cancellation()));
      const after = engine.stats();
      assert.equal(after.promptTokensEvaluated + after.promptTokensReused - before.promptTokensEvaluated - before.promptTokensReused, tokens);
    }
  });

  test(`${subject.name}: special-token text in a literal span is plain text`, { skip: subject.specialToken === undefined }, async () => {
    const special = subject.specialToken!;
    const parsed = await engine.countTokens({ prompt: special }, 256);
    const literal = await engine.countTokens({ prompt: special, literalSpans: [{ start: 0, end: special.length }] }, 256);
    assert.equal(parsed.tokens, 1);
    assert.ok(literal.tokens > 1, `${literal.tokens} tokens`);
    // Around a literal span, the template's own special tokens are still parsed.
    const framed = await engine.countTokens({ prompt: special + special + special, literalSpans: [{ start: special.length, end: 2 * special.length }] }, 256);
    assert.equal(framed.tokens, 2 + literal.tokens);
  });

  test(`${subject.name}: tokens, then exactly one done last; maxTokens caps the count and gives "length"`, async () => {
    const events = await collect(engine.generate(request({ maxTokens: 5 }), new Cancellation()));
    const done = events.filter((e) => e.type === "done");
    assert.equal(done.length, 1);
    assert.equal(events.at(-1)?.type, "done");
    const tokens = tokensOf(events);
    assert.ok(tokens >= 1 && tokens <= 5, `${tokens} tokens`);
    const last = events.at(-1)!;
    assert.equal(last.type === "done" && last.finishReason, tokens === 5 ? "length" : "stop");
    for (const e of events) if (e.type === "token") assert.ok(e.tokenCount >= 1 && e.logprobs === undefined);
  });

  test(`${subject.name}: maxTokens 1 gives one token`, async () => {
    const events = await collect(engine.generate(request({ maxTokens: 1 }), new Cancellation()));
    assert.ok(tokensOf(events) <= 1);
    assert.equal(events.at(-1)?.type, "done");
  });

  test(`${subject.name}: the same seed reproduces a sampled generation`, async () => {
    const sampled = request({ temperature: 1, topP: 1, seed: 1234, maxTokens: 6 });
    const first = textOf(await collect(engine.generate(sampled, new Cancellation())));
    const second = textOf(await collect(engine.generate(sampled, new Cancellation())));
    assert.equal(second, first);
  });

  test(`${subject.name}: topLogprobs gives one logprob entry per generated token, at most topLogprobs alternatives each`, async () => {
    const events = await collect(engine.generate(request({ maxTokens: 4, topLogprobs: 2 }), new Cancellation()));
    for (const e of events) {
      if (e.type !== "token") continue;
      assert.equal(e.logprobs?.length, e.tokenCount);
      for (const entry of e.logprobs ?? []) {
        assert.ok(entry.logprob <= 0);
        assert.ok(entry.topLogprobs.length <= 2);
        assert.ok(Array.isArray(entry.bytes));
      }
    }
    assert.ok(tokensOf(events) >= 1);
  });

  test(`${subject.name}: aborting stops within a step, ends without done, and frees the sequence`, async () => {
    const before = engine.stats().generatedTokens;
    const signal = new Cancellation();
    const events: EngineEvent[] = [];
    for await (const event of engine.generate(request({ maxTokens: 200 }), signal)) {
      events.push(event);
      if (tokensOf(events) >= 2) signal.abort(new Error("client gone"));
    }
    assert.equal(events.some((e) => e.type === "done"), false);
    assert.ok(tokensOf(events) <= 3, `${tokensOf(events)} tokens after the abort`);
    assert.ok(engine.stats().generatedTokens - before <= 3);
    // Every sequence is free again: as many generations as the engine has sequences run side by side.
    const runs = await Promise.all(Array.from({ length: SEQUENCES }, (_, i) => collect(engine.generate(request({ maxTokens: 3, seed: i }), new Cancellation()))));
    for (const events of runs) assert.equal(events.at(-1)?.type, "done");
  });

  test(`${subject.name}: a signal aborted before the start yields no tokens`, async () => {
    const signal = new Cancellation();
    signal.abort(new Error("gone"));
    const events = await collect(engine.generate(request(), signal));
    assert.equal(tokensOf(events), 0);
    assert.equal(events.some((e) => e.type === "done"), false);
  });

  test(`${subject.name}: stats count the tokens generated`, async () => {
    const before = engine.stats().generatedTokens;
    const events = await collect(engine.generate(request({ maxTokens: 4 }), new Cancellation()));
    assert.equal(engine.stats().generatedTokens - before, tokensOf(events));
  });

  test(`${subject.name}: close() unloads`, async () => {
    await engine.close();
    assert.equal(engine.isReady(), false);
  });
}
