/**
 * The onnx classifier end to end on generated classifiers (random weights cannot classify: these
 * check the mechanics): probabilities, label → category mapping (softmax labels summed, sigmoid
 * labels maxed), cut points, jailbreak on prompts only, windows over long text, the folder and
 * option errors, abort, and the thread ending on close().
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { ensureTextClassifierTestModel, KOALA_LABEL_NAMES, writeTextClassifierTestModel, type TextClassifierTestModelOptions } from "../model-factory/text-classifier-model.ts";
import { phi3vTokenizerConfig, phi3vTokenizerJson } from "../model-factory/hf-tokenizer.ts";
import type { TextClassifier } from "./classifier.ts";
import { OnnxClassifierRunner, specialTokensOf, tokenWindows } from "./onnx-classifier-runner.ts";
import { OnnxClassifierThread } from "./onnx-classifier-thread.ts";
import {
  KOALA_TEXT_MODERATION_LABELS,
  classificationOf,
  createOnnxTextClassifier,
  readOnnxClassifierFolder,
  severityOf,
  toProbabilities,
  type LabelPlan,
  type OnnxTextClassifierOptions,
} from "./onnx-text-classifier.ts";

const open: { close(): Promise<void> }[] = [];
after(async () => {
  for (const c of open) await c.close();
});

const never = new AbortController().signal;

async function classifier(model: TextClassifierTestModelOptions, options: Partial<OnnxTextClassifierOptions> = {}): Promise<TextClassifier> {
  const folder = await ensureTextClassifierTestModel(model);
  const c = await createOnnxTextClassifier({ folder, labels: KOALA_TEXT_MODERATION_LABELS, ...options });
  open.push({ close: () => c.close!() });
  return c;
}

/** Softmax logits giving exactly these probabilities (up to rounding): ln p. */
const softmaxBiases = (probabilities: Record<string, number>) => KOALA_LABEL_NAMES.map((label) => Math.log(probabilities[label]!));
const logit = (p: number) => Math.log(p / (1 - p));

test("severityOf: below the first cut point 0, then 2, 4, 6 from each cut point on", () => {
  const cuts = [0.25, 0.5, 0.8] as const;
  assert.deepEqual([0, 0.2499, 0.25, 0.4999, 0.5, 0.7999, 0.8, 1].map((p) => severityOf(p, cuts)), [0, 0, 2, 2, 4, 4, 6, 6]);
});

test("softmax rows sum to 1, sigmoid scores stay in [0, 1]; softmax labels of a category add up, sigmoid ones take the highest", () => {
  const soft = toProbabilities(Float32Array.from([1, 2, 3, -1, 0, 5]), 3, "softmax");
  for (const row of [0, 3]) assert.ok(Math.abs(soft[row]! + soft[row + 1]! + soft[row + 2]! - 1) < 1e-6);
  assert.ok([...toProbabilities(Float32Array.from([-40, 0, 40]), 3, "sigmoid")].every((p) => p >= 0 && p <= 1));
  const plan = (activation: "softmax" | "sigmoid"): LabelPlan => ({
    labels: ["a", "b", "c"],
    targets: { a: "hate", b: "hate", c: "ignore" },
    activation,
    cutPoints: [0.25, 0.5, 0.8],
  });
  // softmax: a 0.3 + b 0.3 = 0.6 → medium; sigmoid with the same two 0.3 scores → low.
  assert.deepEqual(classificationOf(Float32Array.from([0.3, 0.3, 0.4].map(Math.log)), plan("softmax"), "prompt").severities, { hate: 4 });
  assert.deepEqual(classificationOf(Float32Array.from([logit(0.3), logit(0.3), 0]), plan("sigmoid"), "prompt").severities, { hate: 2 });
  // Over windows a category takes its highest.
  assert.deepEqual(classificationOf(Float32Array.from([logit(0.1), 0, 0, logit(0.9), -9, -9, logit(0.3), 0, 0]), plan("sigmoid"), "prompt").severities, { hate: 6 });
});

test("windows: bodies of maxTokens less the special tokens, overlapping by an eighth, covering every id in order", () => {
  const special = { prefix: [101], suffix: [102] };
  const ids = Array.from({ length: 100 }, (_, i) => 1000 + i);
  assert.deepEqual(tokenWindows(ids.slice(0, 10), special, 12), [[101, ...ids.slice(0, 10), 102]]);
  assert.deepEqual(tokenWindows([], special, 12), [[101, 102]]);
  const windows = tokenWindows(ids, special, 18); // body 16, overlap 2, stride 14
  assert.deepEqual(
    windows.map((w) => w.slice(1, -1)),
    [0, 14, 28, 42, 56, 70, 84].map((start) => ids.slice(start, start + 16)),
  );
  for (const w of windows) assert.ok(w.length <= 18 && w[0] === 101 && w.at(-1) === 102);
  assert.throws(() => tokenWindows(ids, special, 2), /leaves no room/);
});

test("the special tokens around one text are found from the tokenizer (Phi-3's: <s> before, none after)", () => {
  const tokenizer = new Tokenizer(phi3vTokenizerJson(), phi3vTokenizerConfig({ modelMaxLength: 512 }));
  assert.deepEqual(specialTokensOf(tokenizer), { prefix: [1], suffix: [] });
});

test("random weights: every window's probabilities are in [0, 1], the thread gives what the model gives inline, and again the same", async () => {
  const folder = await readOnnxClassifierFolder(await ensureTextClassifierTestModel({ seed: 3 }));
  const spec = { modelFile: folder.modelFile, tokenizerJson: folder.tokenizerJson, tokenizerConfig: folder.tokenizerConfig, labelCount: 9, maxTokens: 40, threads: 1 };
  const inline = await OnnxClassifierRunner.load(spec);
  const thread = new OnnxClassifierThread(spec);
  open.push(thread);
  const text = "The quick brown fox jumps over the lazy dog. ".repeat(12);
  const direct = (await inline.logits(text))!;
  await inline.release();
  const threaded = await thread.logits(text, never);
  assert.ok(direct.windows > 1);
  assert.equal(threaded.windows, direct.windows);
  assert.deepEqual(threaded.logits, direct.logits);
  assert.deepEqual((await thread.logits(text, never)).logits, direct.logits);
  const probabilities = toProbabilities(threaded.logits.slice(), 9, "softmax");
  assert.ok(probabilities.every((p) => p >= 0 && p <= 1));
  assert.notDeepEqual(direct.logits.subarray(0, 9), direct.logits.subarray(9, 18)); // windows differ
  // Texts sent together are answered each with its own logits, as one at a time.
  const texts = [text, "hello world", "What is the capital of France?", text.slice(0, 100)];
  const together = await Promise.all(texts.map((x) => thread.logits(x, never)));
  for (const [i, x] of texts.entries()) assert.deepEqual(together[i], await thread.logits(x, never));
  assert.equal(new Set(together.map((r) => r.logits.join())).size, texts.length);
  const c = await classifier({ seed: 3 });
  assert.deepEqual(await c.classify(text, "prompt", never), await c.classify(text, "prompt", never));
});

test("transformers.js's text-classification pipeline reads the same folder and gives the same scores (softmax, and sigmoid for multi-label)", async (t) => {
  const transformers = await import("@huggingface/transformers").catch(() => undefined);
  if (!transformers) return t.skip("@huggingface/transformers (a dev dependency) is not installed");
  const root = await mkdtemp(join(tmpdir(), "phiserve-onnxcls-tjs-"));
  const { env, pipeline } = transformers;
  const saved = { allowRemoteModels: env.allowRemoteModels, allowLocalModels: env.allowLocalModels, localModelPath: env.localModelPath };
  Object.assign(env, { allowRemoteModels: false, allowLocalModels: true, localModelPath: `${root}/` });
  try {
    const text = "The quick brown fox jumps over the lazy dog.";
    const models: [string, TextClassifierTestModelOptions][] = [
      ["softmax", { seed: 11 }],
      ["sigmoid", { seed: 12, labels: ["toxic", "threat", "insult"], problemType: "multi_label_classification" }],
    ];
    for (const [name, model] of models) {
      const dir = join(root, name);
      await writeTextClassifierTestModel(dir, model);
      // transformers.js picks the model class by model_type; the graph's IO is what it feeds either way.
      const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
      await writeFile(join(dir, "config.json"), JSON.stringify({ ...config, model_type: "bert" }));
      const classify = await pipeline("text-classification", name, { dtype: "fp32" });
      const theirs = (await classify(text, { top_k: null })) as { label: string; score: number }[];
      await classify.dispose();
      const folder = await readOnnxClassifierFolder(dir);
      const runner = await OnnxClassifierRunner.load({ modelFile: folder.modelFile, tokenizerJson: folder.tokenizerJson, tokenizerConfig: folder.tokenizerConfig, labelCount: folder.labels.length, maxTokens: 512, threads: 1 });
      const ours = toProbabilities((await runner.logits(text))!.logits, folder.labels.length, folder.activation);
      await runner.release();
      assert.equal(theirs.length, folder.labels.length);
      for (const { label, score } of theirs) assert.ok(Math.abs(ours[folder.labels.indexOf(label)]! - score) < 1e-5, `${name} ${label}: ${ours[folder.labels.indexOf(label)]} vs ${score}`);
    }
  } finally {
    Object.assign(env, saved);
    await rm(root, { recursive: true, force: true });
  }
});

test("KoalaAI's labels map onto Azure's categories through the cut points (softmax: H + H2 + HR is hate)", async () => {
  const probabilities = { H: 0.3, H2: 0.3, HR: 0.01, OK: 0.05, S: 0.24, S3: 0.02, SH: 0.02, V: 0.05, V2: 0.01 };
  const model = { weightScale: 0, biases: softmaxBiases(probabilities) };
  const defaults = await classifier(model);
  assert.deepEqual(await defaults.classify("anything at all", "prompt", never), { severities: { hate: 4, sexual: 2, violence: 0, self_harm: 0 } });
  const strict = await classifier(model, { cutPoints: [0.01, 0.05, 0.6] });
  assert.deepEqual(await strict.classify("anything at all", "completion", never), { severities: { hate: 6, sexual: 4, violence: 4, self_harm: 2 } });
  // Harassment alone counts as hate.
  const harassment = await classifier({ weightScale: 0, biases: softmaxBiases({ H: 0.01, H2: 0.01, HR: 0.9, OK: 0.02, S: 0.01, S3: 0.01, SH: 0.01, V: 0.02, V2: 0.01 }) });
  assert.equal((await harassment.classify("x", "prompt", never)).severities.hate, 6);
});

test("a multi-label model: sigmoid scores; its jailbreak label is judged on prompts only, at the second cut point", async () => {
  const labels = ["toxic", "identity_hate", "threat", "JAILBREAK"];
  const options = { labels: { toxic: "ignore", identity_hate: "hate", threat: "violence", JAILBREAK: "jailbreak" } as const };
  const model = (jailbreak: number): TextClassifierTestModelOptions => ({ labels, problemType: "multi_label_classification", weightScale: 0, biases: [logit(0.99), logit(0.3), logit(0.85), logit(jailbreak)] });
  const high = await classifier(model(0.7), options);
  assert.deepEqual(await high.classify("some prompt", "prompt", never), { severities: { hate: 2, violence: 6 }, jailbreak: true });
  assert.deepEqual(await high.classify("some completion", "completion", never), { severities: { hate: 2, violence: 6 } });
  const low = await classifier(model(0.4), options);
  assert.equal((await low.classify("some prompt", "prompt", never)).jailbreak, false);
});

test("long text is read in windows: a word past the first window still counts, and the same text without it does not", async () => {
  const labels = ["OK", "SH"];
  const c = await classifier({ labels, problemType: "multi_label_classification", weightScale: 0, biases: [0, -8], triggers: { apple: "SH" } }, { labels: { OK: "ignore", SH: "self_harm" }, maxTokens: 64 });
  const filler = "hello world, this is a perfectly ordinary sentence. ".repeat(60); // about 700 tokens
  assert.deepEqual(await c.classify(filler, "prompt", never), { severities: { self_harm: 0 } });
  for (const text of [`apple ${filler}`, `${filler.slice(0, 1500)} apple ${filler.slice(1500)}`, `${filler} apple`]) {
    assert.deepEqual(await c.classify(text, "prompt", never), { severities: { self_harm: 6 } });
  }
});

test("a jailbreak-only model does not run on completions", async () => {
  const c = await classifier({ labels: ["BENIGN", "JAILBREAK"], weightScale: 0, biases: [0, 5] }, { labels: { BENIGN: "ignore", JAILBREAK: "jailbreak" } });
  assert.deepEqual(await c.classify("hi", "completion", never), { severities: {} });
  assert.deepEqual(await c.classify("hi", "prompt", never), { severities: {}, jailbreak: true });
});

test("the graph is found at model.onnx or *_quantized.onnx too (full precision first), and a token_type_ids input is fed", async () => {
  for (const modelFile of ["model.onnx", "onnx/model_quantized.onnx", "model_quantized.onnx"]) {
    const folder = await readOnnxClassifierFolder(await ensureTextClassifierTestModel({ modelFile, labels: ["a", "b"] }));
    assert.ok(folder.modelFile.endsWith(modelFile), modelFile);
  }
  const dir = await mkdtemp(join(tmpdir(), "phiserve-onnxcls-"));
  try {
    await writeTextClassifierTestModel(dir, { modelFile: "onnx/model_quantized.onnx", labels: ["a", "b"] });
    await writeTextClassifierTestModel(dir, { modelFile: "model.onnx", labels: ["a", "b"] });
    assert.equal((await readOnnxClassifierFolder(dir)).modelFile, join(dir, "model.onnx"));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const c = await classifier({ modelFile: "model_quantized.onnx", tokenTypeIds: true, weightScale: 0, biases: softmaxBiases({ H: 0.01, H2: 0.01, HR: 0.01, OK: 0.01, S: 0.01, S3: 0.01, SH: 0.92, V: 0.01, V2: 0.01 }) });
  assert.equal((await c.classify("hello", "prompt", never)).severities.self_harm, 6);
});

test("a bad folder or bad options are refused with what is wrong", async () => {
  const dir = await mkdtemp(join(tmpdir(), "phiserve-onnxcls-"));
  const create = (options: Partial<OnnxTextClassifierOptions> = {}) => createOnnxTextClassifier({ folder: dir, labels: KOALA_TEXT_MODERATION_LABELS, ...options });
  try {
    await assert.rejects(create(), /no config\.json/);
    await writeTextClassifierTestModel(dir, {});
    await assert.rejects(create({ labels: { ...KOALA_TEXT_MODERATION_LABELS, TOXIC: "hate" } }), /names TOXIC, which the model does not have \(its labels: H, H2, HR, OK/);
    const { SH: _sh, ...withoutSelfHarm } = KOALA_TEXT_MODERATION_LABELS;
    await assert.rejects(create({ labels: withoutSelfHarm }), /says nothing of SH/);
    await assert.rejects(create({ labels: { ...KOALA_TEXT_MODERATION_LABELS, SH: "selfharm" as never } }), /SH maps to selfharm/);
    await assert.rejects(create({ cutPoints: [0.5, 0.4, 0.9] }), /cutPoints must be three increasing/);
    await assert.rejects(create({ maxTokens: 1024 }), /more than the model's max_position_embeddings \(512\)/);
    await assert.rejects(create({ threads: 0 }), /threads must be a positive integer/);
    await assert.rejects(create({ modelFile: "onnx/model_q4f16.onnx" }), /no ONNX graph \(looked for onnx\/model_q4f16\.onnx\)/);
    await writeFile(join(dir, "onnx", "model.onnx"), "not a model");
    await assert.rejects(create(), /cannot load the ONNX classifier .*model\.onnx/);
    await rm(join(dir, "onnx"), { recursive: true });
    await assert.rejects(create(), /no ONNX graph \(looked for onnx\/model\.onnx, model\.onnx, onnx\/model_quantized\.onnx, model_quantized\.onnx\)/);
    await writeFile(join(dir, "config.json"), JSON.stringify({ model_type: "bert" }));
    await assert.rejects(create(), /config\.json has no id2label/);
    await writeFile(join(dir, "config.json"), "{");
    await assert.rejects(create(), /config\.json is not a JSON object/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("abort: an aborted signal rejects with its reason; a text aborted in flight rejects, and the next is answered", async () => {
  const c = await classifier({ seed: 5 });
  const aborted = AbortSignal.abort(new Error("timed out"));
  await assert.rejects(c.classify("hello", "prompt", aborted), /timed out/);
  const controller = new AbortController();
  const long = c.classify("a long text to read in many windows. ".repeat(2000), "prompt", controller.signal);
  controller.abort(new Error("gave up"));
  await assert.rejects(long, /gave up/);
  assert.deepEqual(Object.keys((await c.classify("hello", "prompt", never)).severities).sort(), ["hate", "self_harm", "sexual", "violence"]);
});

test("close() ends the thread; later calls reject", async () => {
  const folder = await readOnnxClassifierFolder(await ensureTextClassifierTestModel({}));
  const thread = new OnnxClassifierThread({ modelFile: folder.modelFile, tokenizerJson: folder.tokenizerJson, tokenizerConfig: folder.tokenizerConfig, labelCount: 9, maxTokens: 512, threads: 1 });
  await thread.start();
  assert.equal(thread.isRunning(), true);
  const pending = assert.rejects(thread.logits("in flight when closed ".repeat(500), never), /closed/);
  await thread.close();
  assert.equal(thread.isRunning(), false);
  await pending;
  await assert.rejects(thread.logits("hello", never), /closed/);
  const c = await createOnnxTextClassifier({ folder: await ensureTextClassifierTestModel({}), labels: KOALA_TEXT_MODERATION_LABELS });
  await c.close!();
  await assert.rejects(c.classify("hello", "prompt", never), /closed/);
});

test("a thread that dies fails what it held and is replaced on the next call", async () => {
  const folder = await readOnnxClassifierFolder(await ensureTextClassifierTestModel({}));
  const thread = new OnnxClassifierThread({ modelFile: folder.modelFile, tokenizerJson: folder.tokenizerJson, tokenizerConfig: folder.tokenizerConfig, labelCount: 9, maxTokens: 512, threads: 1 });
  open.push(thread);
  const before = await thread.logits("hello world", never);
  const held = assert.rejects(thread.logits("held when it died ".repeat(500), never), /thread exited/);
  await (thread as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate(); // as a crash would end it
  await held;
  assert.equal(thread.isRunning(), false);
  assert.deepEqual(await thread.logits("hello world", never), before);
  assert.equal(thread.isRunning(), true);
});
