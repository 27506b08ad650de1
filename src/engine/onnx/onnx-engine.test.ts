import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import type { Engine, EngineEvent, EngineImage, GenerationRequest } from "../engine.ts";
import type { EnginePlan } from "../engine-factory.ts";
import { AppError } from "../../errors/app-error.ts";
import { Cancellation } from "../../lib/cancellation.ts";
import { ensurePhi3vTestModel } from "../../model-factory/phi3v-test-model.ts";
import { createOnnxEngineFactory } from "./onnx-engine-factory.ts";

const PROMPT = "<s><|user|>\n<|image_1|>\nWhat is in this picture?<|end|>\n<|assistant|>\n";
const TEXT_PROMPT = "<s><|user|>\nTell me a story.<|end|>\n<|assistant|>\n";
/** A 336×336 image at num_crops 16: ((1·1) + 1)·144 + 1 + (1 + 1)·12 positions. */
const SQUARE_TOKENS = 313;

let modelPath: string;
const engines: Engine[] = [];

async function engineWith(overrides: Partial<EnginePlan> = {}): Promise<Engine> {
  const engine = await createOnnxEngineFactory().create({
    modelPath, modelContextLength: undefined, contextSize: 1024, parallel: 2, threads: 1, batchSize: 128, decodeBatch: undefined,
    gpu: "cpu", extraStopTokens: ["<|end|>", "<|endoftext|>", "<|assistant|>"], logger: pino({ level: "silent" }), ...overrides,
  });
  engines.push(engine);
  await engine.load();
  return engine;
}

function image(fill: (i: number) => number, imageSize: readonly [number, number] = [336, 336], tokens = SQUARE_TOKENS): EngineImage {
  const pixelValues = new Float32Array(17 * 3 * 336 * 336);
  for (let i = 0; i < pixelValues.length; i++) pixelValues[i] = fill(i);
  return { pixelValues, crops: 17, imageSize, tokens };
}

const request = (extra: Partial<GenerationRequest> = {}): GenerationRequest => ({
  prompt: TEXT_PROMPT, maxTokens: 12, temperature: 0, topP: 1, presencePenalty: 0, frequencyPenalty: 0, ...extra,
});

async function collect(events: AsyncIterable<EngineEvent>): Promise<EngineEvent[]> {
  const out: EngineEvent[] = [];
  for await (const event of events) out.push(event);
  return out;
}

/** The generated tokens' texts, from their logprobs entries. */
async function tokenTexts(engine: Engine, extra: Partial<GenerationRequest> = {}): Promise<string[]> {
  const events = await collect(engine.generate(request({ topLogprobs: 0, ...extra }), new Cancellation()));
  return events.flatMap((e) => (e.type === "token" ? (e.logprobs ?? []).map((l) => l.token) : []));
}

const textOf = (events: readonly EngineEvent[]) => events.map((e) => (e.type === "token" ? e.text : "")).join("");
const doneOf = (events: readonly EngineEvent[]) => events.find((e) => e.type === "done");
const tokensOf = (events: readonly EngineEvent[]) => events.reduce((sum, e) => sum + (e.type === "token" ? e.tokenCount : 0), 0);

let engine: Engine;
before(async () => {
  modelPath = await ensurePhi3vTestModel();
  engine = await engineWith();
});
after(async () => {
  for (const e of engines) await e.close();
});

test("an image prompt counts the text ids plus the image's positions, and generate evaluates exactly that many", async () => {
  const withImage = { prompt: PROMPT, images: [image(() => 0.1)] };
  const text = await engine.countTokens({ prompt: PROMPT.replace("<|image_1|>\n", "<|image|>\n") }, 4096);
  const counted = await engine.countTokens(withImage, 4096);
  assert.deepEqual(counted, { tokens: text.tokens - 1 + SQUARE_TOKENS, exact: true });
  const before = engine.stats().promptTokensEvaluated;
  await collect(engine.generate(request({ ...withImage, maxTokens: 1 }), new Cancellation()));
  assert.equal(engine.stats().promptTokensEvaluated - before, counted.tokens);
});

test("the image changes the output; the same image gives the same output", async () => {
  const run = async (img: EngineImage) => textOf(await collect(engine.generate(request({ prompt: PROMPT, images: [img], maxTokens: 16 }), new Cancellation())));
  const first = await run(image((i) => Math.sin(i / 1000)));
  assert.equal(await run(image((i) => Math.sin(i / 1000))), first);
  assert.notEqual(await run(image((i) => Math.cos(i / 37))), first);
  const wide = image((i) => Math.sin(i / 1000), [336, 672], 1 + 144 * 3 + 2 * 12); // one row of two tiles
  assert.notEqual(await run(wide), first);
});

test("an image whose token count disagrees with the vision encoder's rows is a clear error", async () => {
  const wrong = image(() => 0, [336, 336], SQUARE_TOKENS - 1);
  await assert.rejects(collect(engine.generate(request({ prompt: PROMPT, images: [wrong] }), new Cancellation())), /vision encoder returned 313 feature rows for an image of 312 tokens/);
  // The sequence was given back: the engine still serves both sequences.
  const runs = await Promise.all([0, 1].map(() => collect(engine.generate(request({ maxTokens: 2 }), new Cancellation()))));
  for (const events of runs) assert.equal(doneOf(events)?.type, "done");
});

test("bad image references are errors, in countTokens and generate", async () => {
  await assert.rejects(engine.countTokens({ prompt: PROMPT }, 4096), /<\|image_1\|> refers to no image/);
  await assert.rejects(collect(engine.generate(request({ prompt: TEXT_PROMPT, images: [image(() => 0)] }), new Cancellation())), /image 1 of 1 is not referred to/);
});

test("literal <|end|> in a message stays text: more tokens, and the generation goes on", async () => {
  const content = "Say <|end|> twice: <|end|>";
  const prompt = `<|user|>\n${content}<|end|>\n<|assistant|>\n`;
  const literal = { prompt, literalSpans: [{ start: 9, end: 9 + content.length }] };
  const parsed = await engine.countTokens({ prompt }, 4096);
  const counted = await engine.countTokens(literal, 4096);
  // `<|end|>` as text is five tokens (▁< | end | >); parsed, one (plus a ▁ piece around it).
  assert.ok(counted.tokens > parsed.tokens, `${parsed.tokens} parsed, ${counted.tokens} as text`);
  const before = engine.stats().promptTokensEvaluated;
  const events = await collect(engine.generate(request({ ...literal, maxTokens: 4 }), new Cancellation()));
  assert.equal(engine.stats().promptTokensEvaluated - before, counted.tokens);
  assert.equal(tokensOf(events), 4);
});

test("stop tokens end the generation without being streamed", async () => {
  // The test model never picks a special token on its own: a bias makes each one win.
  for (const stop of [32007, 32000, 32001]) {
    const events = await collect(engine.generate(request({ logitBias: new Map([[stop, 100]]) }), new Cancellation()));
    assert.deepEqual(events, [{ type: "done", finishReason: "stop" }], `token ${stop}`);
  }
  // `<|user|>` is no stop token: it is generated, and streams no text.
  const user = await collect(engine.generate(request({ maxTokens: 2, logitBias: new Map([[32010, 100]]) }), new Cancellation()));
  assert.equal(tokensOf(user), 2);
  assert.equal(textOf(user), "");
});

const THE = 278; // "▁the"

test("logit_bias and penalties steer decoding (OpenAI's formula)", async () => {
  const plain = await tokenTexts(engine, { maxTokens: 6 });
  assert.ok(plain.filter((t) => t === " the").length < 6, "unbiased, the model says something else");
  // A large bias makes "▁the" win every step.
  assert.deepEqual(await tokenTexts(engine, { maxTokens: 6, logitBias: new Map([[THE, 50]]) }), new Array(6).fill(" the"));
  // A frequency penalty of 30 per use: +20 after one use still wins, −10 after two does not, ever again.
  const frequency = await tokenTexts(engine, { maxTokens: 6, logitBias: new Map([[THE, 50]]), frequencyPenalty: 30 });
  assert.deepEqual(frequency.slice(0, 2), [" the", " the"]);
  assert.equal(frequency.filter((t) => t === " the").length, 2, frequency.join("|"));
  // A presence penalty counts once, however often the token came: 60 takes it below every other token after one use.
  const presence = await tokenTexts(engine, { maxTokens: 6, logitBias: new Map([[THE, 50]]), presencePenalty: 60 });
  assert.equal(presence[0], " the");
  assert.equal(presence.filter((t) => t === " the").length, 1, presence.join("|"));
  // −100 bans a token, and suppressTokens bans by text.
  const banned = await tokenTexts(engine, { maxTokens: 6, logitBias: new Map([[THE, -100]]), temperature: 1, seed: 5 });
  assert.ok(!banned.includes(" the"));
  const suppressed = await tokenTexts(engine, { maxTokens: 3, logitBias: new Map([[THE, 50]]), suppressTokens: ["▁the"] });
  assert.ok(!suppressed.includes(" the"), suppressed.join("|"));
});

test("a seed reproduces a sampled generation; different seeds differ", async () => {
  const sampled = (seed: number) => collect(engine.generate(request({ temperature: 1, topP: 0.95, seed, maxTokens: 16 }), new Cancellation())).then(textOf);
  const first = await sampled(11);
  assert.equal(await sampled(11), first);
  const others = await Promise.all([12, 13, 14].map(sampled));
  assert.ok(others.some((text) => text !== first));
  // Side by side with another generation, the same seed still gives the same text.
  const [again] = await Promise.all([sampled(11), sampled(99)]);
  assert.equal(again, first);
});

test("two generations run side by side, taking turns step by step, each as it would alone", async () => {
  const a = request({ maxTokens: 10 });
  const b = request({ prompt: PROMPT, images: [image((i) => (i % 7) / 7)], maxTokens: 10 });
  const alone = [textOf(await collect(engine.generate(a, new Cancellation()))), textOf(await collect(engine.generate(b, new Cancellation())))];
  const order: string[] = [];
  const tagged = async (name: string, r: GenerationRequest) => {
    const events: EngineEvent[] = [];
    for await (const event of engine.generate(r, new Cancellation())) {
      events.push(event);
      order.push(`${name}:${event.type}`);
    }
    return textOf(events);
  };
  const together = await Promise.all([tagged("a", a), tagged("b", b)]);
  assert.deepEqual(together, alone);
  // Neither finished before the other had started streaming.
  assert.ok(order.indexOf("a:done") > order.indexOf("b:token"), order.join(" "));
  assert.ok(order.indexOf("b:done") > order.indexOf("a:token"), order.join(" "));
});

test("cancellation frees the sequence: a waiting generation gets it, an aborted waiter takes nothing", async () => {
  const single = await engineWith({ parallel: 1 });
  assert.equal(single.capacity().sequences, 1);
  const first = new Cancellation();
  const running = single.generate(request({ maxTokens: 500 }), first)[Symbol.asyncIterator]();
  assert.equal((await running.next()).value?.type, "token");
  // A second generation waits for the only sequence; a third gives up while waiting.
  const second = collect(single.generate(request({ maxTokens: 3 }), new Cancellation()));
  const thirdSignal = new Cancellation();
  const third = collect(single.generate(request({ maxTokens: 3 }), thirdSignal));
  thirdSignal.abort(new Error("gone"));
  assert.deepEqual(await third, []);
  first.abort(new Error("client gone"));
  const rest: EngineEvent[] = [];
  for (let next = await running.next(); !next.done; next = await running.next()) rest.push(next.value);
  assert.ok(tokensOf(rest) <= 1, `${tokensOf(rest)} tokens after the abort`);
  assert.equal(doneOf(rest), undefined);
  const events = await second;
  assert.equal(tokensOf(events), 3);
  assert.deepEqual(doneOf(events), { type: "done", finishReason: "length" });
});

test("the context window ends a generation with length; a prompt that fills it is refused", async () => {
  const small = await engineWith({ contextSize: 40, parallel: 1 });
  assert.equal(small.modelInfo().contextLength, 40);
  const { tokens } = await small.countTokens({ prompt: TEXT_PROMPT }, 40);
  const events = await collect(small.generate(request({ maxTokens: 100 }), new Cancellation()));
  assert.equal(tokensOf(events), 40 - tokens);
  assert.deepEqual(doneOf(events), { type: "done", finishReason: "length" });
  await assert.rejects(collect(small.generate(request({ prompt: TEXT_PROMPT.repeat(4) }), new Cancellation())), (error: unknown) => error instanceof AppError && error.code === "CONTEXT_LENGTH_EXCEEDED");
});

test("JSON output is refused with INVALID_REQUEST", async () => {
  const refused = (error: unknown) => error instanceof AppError && error.code === "INVALID_REQUEST" && /not supported by the ONNX vision engine/.test(error.message);
  await assert.rejects(engine.prepareConstraint({ type: "json" }), refused);
  await assert.rejects(collect(engine.generate(request({ constraint: { type: "json" } }), new Cancellation())), refused);
});

test("model facts: Phi-3-vision's tokens and vocabulary, memory from the graph files and KV caches", async () => {
  assert.deepEqual(engine.modelInfo(), { contextLength: 1024, bosToken: "<s>", eosToken: "<|endoftext|>", addBosToken: true, vocabSize: 32064 });
  const facts = await createOnnxEngineFactory().describe(modelPath);
  assert.equal(facts.contextLength, 131072);
  assert.ok(facts.chatTemplate?.includes("<|assistant|>"));
  const bigger = await createOnnxEngineFactory().create({ ...planOf(engine), contextSize: 2048 });
  assert.ok(bigger.capacity().memoryBytes > engine.capacity().memoryBytes);
});

function planOf(_engine: Engine): EnginePlan {
  return {
    modelPath, modelContextLength: undefined, contextSize: 1024, parallel: 2, threads: 1, batchSize: 128, decodeBatch: undefined,
    gpu: "cpu", extraStopTokens: [], logger: pino({ level: "silent" }),
  };
}
