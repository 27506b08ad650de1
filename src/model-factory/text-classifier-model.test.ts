/**
 * The text classifier test model: a transformers.js-layout folder whose graph ONNX Runtime runs,
 * deterministic per seed, with logits that are exactly the biases (weightScale 0) plus
 * TRIGGER_STRENGTH · count / tokens for a trigger word's label, over the attention mask.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import {
  KOALA_LABEL_NAMES,
  TRIGGER_STRENGTH,
  buildTextClassifierGraph,
  ensureTextClassifierTestModel,
  resolveTextClassifierTestModelOptions,
  textClassifierTestModelDirName,
  textClassifierTestModelFiles,
  writeTextClassifierTestModel,
  type TextClassifierTestModelOptions,
} from "./text-classifier-model.ts";
import { phi3Vocab } from "./phi3-vocab.ts";

const APPLE = phi3Vocab().tokens.indexOf("\u2581apple");
const HELLO = phi3Vocab().tokens.indexOf("\u2581hello");

async function session(options: TextClassifierTestModelOptions): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(buildTextClassifierGraph(resolveTextClassifierTestModelOptions(options)));
}

const i64 = (rows: number[][]) => new ort.Tensor("int64", BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0]!.length]);

async function logits(s: ort.InferenceSession, ids: number[][], mask = ids.map((row) => row.map(() => 1))): Promise<number[][]> {
  const feeds: Record<string, ort.Tensor> = { input_ids: i64(ids), attention_mask: i64(mask) };
  if (s.inputNames.includes("token_type_ids")) feeds.token_type_ids = i64(ids.map((row) => row.map(() => 0)));
  const out = (await s.run(feeds)).logits!;
  const width = out.dims[1]!;
  const data = [...(out.data as Float32Array)];
  return ids.map((_, r) => data.slice(r * width, (r + 1) * width));
}

test("the folder has transformers.js's layout: config.json with id2label and problem_type, the tokenizer, onnx/model.onnx", async () => {
  const dir = await mkdtemp(join(tmpdir(), "phiserve-tcm-"));
  try {
    await writeTextClassifierTestModel(dir, { labels: ["toxic", "threat"], problemType: "multi_label_classification" });
    assert.deepEqual((await readdir(dir)).sort(), ["config.json", "onnx", "phiserve-test-model.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]);
    assert.deepEqual(await readdir(join(dir, "onnx")), ["model.onnx"]);
    const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
    assert.deepEqual(config.id2label, { 0: "toxic", 1: "threat" });
    assert.deepEqual(config.label2id, { toxic: 0, threat: 1 });
    assert.equal(config.problem_type, "multi_label_classification");
    const s = await ort.InferenceSession.create(join(dir, "onnx", "model.onnx"));
    assert.deepEqual(s.inputNames, ["input_ids", "attention_mask"]);
    assert.deepEqual(s.outputNames, ["logits"]);
    await s.release();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("the same options give the same bytes; another seed other weights and other logits", async () => {
  const a = textClassifierTestModelFiles({ seed: 1 });
  const b = textClassifierTestModelFiles({ seed: 1 });
  const c = textClassifierTestModelFiles({ seed: 2 });
  for (const [name, bytes] of a) assert.deepEqual(b.get(name), bytes, name);
  assert.notDeepEqual(c.get("onnx/model.onnx"), a.get("onnx/model.onnx"));
  const ids = [[1, 22172, 3186, 450]];
  const [one, two] = [await logits(await session({ seed: 1 }), ids), await logits(await session({ seed: 2 }), ids)];
  assert.equal(one[0]!.length, KOALA_LABEL_NAMES.length);
  assert.notDeepEqual(one, two);
  assert.ok(one[0]!.every(Number.isFinite));
});

test("weightScale 0: every label's logit is its bias, whatever the text", async () => {
  const biases = [-3, 0.5, 2, -1.25, 0, 4, -0.75, 1, 3];
  const s = await session({ weightScale: 0, biases });
  for (const row of await logits(s, [[1, 22172, 3186], [1, 450, 7]])) assert.deepEqual(row, biases);
});

test("a trigger word adds TRIGGER_STRENGTH · count / tokens to its label alone, counting only unmasked tokens", async () => {
  const biases = [0, 0, 0, 0, 0, 0, 0, 0, -2];
  const s = await session({ weightScale: 0, biases, triggers: { apple: "SH", hello: "V2" } });
  const sh = KOALA_LABEL_NAMES.indexOf("SH");
  const v2 = KOALA_LABEL_NAMES.indexOf("V2");
  const [withApple, both] = await logits(s, [
    [1, 450, APPLE, 7],
    [1, APPLE, HELLO, APPLE],
  ]);
  const expected = (row: Record<number, number>) => biases.map((b, i) => b + (row[i] ?? 0));
  assert.deepEqual(withApple, expected({ [sh]: TRIGGER_STRENGTH / 4 }));
  assert.deepEqual(both, expected({ [sh]: (TRIGGER_STRENGTH * 2) / 4, [v2]: TRIGGER_STRENGTH / 4 }));
  // Two padded positions (mask 0) neither add their tokens nor count as tokens.
  const [masked] = await logits(s, [[1, APPLE, HELLO, HELLO]], [[1, 1, 0, 0]]);
  assert.deepEqual(masked, expected({ [sh]: TRIGGER_STRENGTH / 2 }));
});

test("token_type_ids is declared when asked, and the graph may go elsewhere in the folder", async () => {
  const s = await session({ tokenTypeIds: true, modelFile: "model_quantized.onnx", labels: ["a", "b"] });
  assert.deepEqual(s.inputNames, ["input_ids", "attention_mask", "token_type_ids"]);
  assert.equal((await logits(s, [[1, 2, 3]]))[0]!.length, 2);
  assert.deepEqual([...textClassifierTestModelFiles({ modelFile: "model_quantized.onnx" }).keys()].filter((name) => name.endsWith(".onnx")), ["model_quantized.onnx"]);
});

test("bad options are refused", () => {
  const build = (options: TextClassifierTestModelOptions) => buildTextClassifierGraph(resolveTextClassifierTestModelOptions(options));
  assert.throws(() => build({ triggers: { zzqxv: "S" } }), /not one token of the Phi-3 vocabulary/);
  assert.throws(() => build({ triggers: { apple: "nope" } }), /trigger label nope/);
  assert.throws(() => build({ labels: ["a", "a"] }), /distinct/);
  assert.throws(() => build({ labels: ["a", "b"], biases: [1] }), /biases needs 2/);
  assert.throws(() => build({ hidden: 4 }), /at least the label count/);
  assert.throws(() => build({ modelFile: "model.bin" }), /must end in .onnx/);
});

test("ensureTextClassifierTestModel caches one folder per options", async () => {
  const options = { labels: ["x", "y"], seed: 7 };
  const dir = await ensureTextClassifierTestModel(options);
  assert.equal(await ensureTextClassifierTestModel({ ...options }), dir);
  assert.ok(dir.endsWith(textClassifierTestModelDirName(options)));
  assert.notEqual(textClassifierTestModelDirName({ ...options, triggers: { apple: "x" } }), textClassifierTestModelDirName(options));
  const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
  assert.deepEqual(config.id2label, { 0: "x", 1: "y" });
});
