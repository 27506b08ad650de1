/**
 * Tests for the test-model factory: encoders, GGUF round trip, the Phi-3 vocabulary against
 * llama.cpp's reference file, and a real load in node-llama-cpp.
 */
import { T5_PHI35_MINI, T7B_PHI4, T8_PHI4_MINI } from "../catalog/chat-templates.ts";
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { getEncoding } from "js-tiktoken";
import llamaTokenizer from "llama-tokenizer-js";
import { getLlama, type LlamaLogLevel, type Token } from "node-llama-cpp";
import { byteToUnicode } from "./bpe-vocab.ts";
import { GgmlType, decodeTensorData, encodeTensorData, f16ToF32, f32ToF16, ggmlByteSize } from "./ggml-quants.ts";
import { metadataValue, readGgufInfo, readTensorValues, type GgufFileInfo } from "./gguf-reader.ts";
import { gguf, writeGguf, type GgufValue } from "./gguf-writer.ts";
import { PHI3_TOKEN_IDS, PHI3_VOCAB_SIZE, TokenType, phi3Vocab } from "./phi3-vocab.ts";
import { PHI4_MINI_TOKEN_IDS, PHI4_MINI_VOCAB_SIZE, PHI4_TOKEN_IDS, PHI4_VOCAB_SIZE } from "./phi4-vocab.ts";
import { SeededRandom } from "./prng.ts";
import {
  TEST_MODEL_DEFAULTS,
  ensureTestModel,
  resolveTestModelOptions,
  testModelDefaults,
  testModelFileName,
  writeTestModel,
} from "./test-models.ts";

const REFERENCE_VOCAB = fileURLToPath(new URL("../../../shared/data/ggml-vocab-phi-3.gguf", import.meta.url));
const workDir = await mkdtemp(join(tmpdir(), "phiserve-model-factory-"));
after(() => rm(workDir, { recursive: true, force: true }));

function encodeDecode(type: GgmlType, values: Float32Array): { bytes: Uint8Array; decoded: Float32Array } {
  const bytes = new Uint8Array(ggmlByteSize(type, values.length));
  encodeTensorData(type, values, bytes, 0);
  return { bytes, decoded: decodeTensorData(type, bytes, 0, values.length) };
}

function randomValues(n: number, seed: number, std: number): Float32Array {
  const out = new Float32Array(n);
  new SeededRandom(seed).fillNormalish(out, std);
  return out;
}

test("f16 conversion rounds to nearest even and handles specials", () => {
  assert.equal(f32ToF16(1), 0x3c00);
  assert.equal(f32ToF16(-2), 0xc000);
  assert.equal(f32ToF16(65504), 0x7bff);
  assert.equal(f32ToF16(65520), 0x7c00, "rounds up to infinity");
  assert.equal(f32ToF16(1e6), 0x7c00);
  assert.equal(f32ToF16(-Infinity), 0xfc00);
  assert.ok(Number.isNaN(f16ToF32(f32ToF16(NaN))));
  assert.equal(f32ToF16(2 ** -24), 0x0001, "smallest subnormal");
  assert.equal(f32ToF16(2 ** -26), 0x0000, "below half the smallest subnormal");
  assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00, "tie rounds to even (down)");
  assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02, "tie rounds to even (up)");
  for (const v of [0.5, -0.375, 3.140625, 2 ** -14, 2 ** -20, 1024]) assert.equal(f16ToF32(f32ToF16(v)), v);
});

test("Q4_0 block layout: fp16 d, low nibble x[j], high nibble x[j+16], value d*(q-8)", () => {
  // Largest magnitude is x[0] = -8, so d = -8/-8 = 1 and q = x + 8 exactly.
  const x = new Float32Array(32);
  for (let j = 0; j < 16; j++) {
    x[j] = j - 8;
    x[16 + j] = 7 - j;
  }
  const { bytes, decoded } = encodeDecode(GgmlType.Q4_0, x);
  assert.equal(bytes.length, 18);
  assert.deepEqual([...bytes.subarray(0, 2)], [0x00, 0x3c]);
  for (let j = 0; j < 16; j++) assert.equal(bytes[2 + j], j | ((15 - j) << 4));
  assert.deepEqual(decoded, x);
});

test("Q8_0 block layout: fp16 d then 32 int8", () => {
  const x = Float32Array.from({ length: 32 }, (_, j) => (j === 31 ? 127 : j - 16));
  const { bytes, decoded } = encodeDecode(GgmlType.Q8_0, x);
  assert.equal(bytes.length, 34);
  assert.deepEqual([...bytes.subarray(0, 2)], [0x00, 0x3c]);
  assert.deepEqual([...new Int8Array(bytes.buffer, 2, 32)], [...x]);
  assert.deepEqual(decoded, x);
});

test("Q8_0 and Q4_0 decode back within quantization error", () => {
  for (const [seed, std] of [[1, 0.02], [2, 1], [3, 300]] as const) {
    const x = randomValues(256, seed, std);
    x.fill(0, 64, 96); // an all-zero block must stay zero (d = 0)
    for (const [type, steps] of [[GgmlType.Q8_0, 127], [GgmlType.Q4_0, 8]] as const) {
      const { decoded } = encodeDecode(type, x);
      for (let b = 0; b < x.length; b += 32) {
        const amax = Math.max(...x.subarray(b, b + 32).map(Math.abs));
        // Half a step from rounding q, plus |q| times the fp16 rounding error of d (relative
        // 2^-11, q computed with the unrounded d). Q4_0 can lose a full step on the extreme of
        // the opposite sign (q is clamped to 15), so allow one step there.
        const step = amax / steps;
        const bound = step * ((type === GgmlType.Q4_0 ? 1 : 0.5) + steps * 2 ** -11) + 1e-12;
        for (let j = b; j < b + 32; j++) assert.ok(Math.abs(decoded[j]! - x[j]!) <= bound, `type ${type} i ${j}`);
      }
      const rms = Math.sqrt(x.reduce((s, v, i) => s + (v - decoded[i]!) ** 2, 0) / x.length);
      assert.ok(rms < std * (type === GgmlType.Q4_0 ? 0.15 : 0.01), `type ${type} rms error ${rms}`);
    }
  }
});

test("phi3 vocabulary follows ggml-vocab-phi-3.gguf id by id (docs/MODELS.md: Vocabularies in GGUF form)", () => {
  const { tokens, scores, types } = phi3Vocab();
  assert.equal(tokens.length, PHI3_VOCAB_SIZE);
  assert.deepEqual([tokens[0], tokens[1], tokens[2], tokens[3], tokens[258], tokens[259]], ["<unk>", "<s>", "</s>", "<0x00>", "<0xFF>", "▁▁"]);
  assert.deepEqual([...types.subarray(0, 4)], [TokenType.CONTROL, TokenType.CONTROL, TokenType.USER_DEFINED, TokenType.BYTE]);
  const demoted = [...scores.keys()].filter((id) => scores[id] === -1e9);
  assert.deepEqual(demoted, [259, 268, 308, 418, 462, 539, 632, 795, 965, 1669, 1678, 3986, 4706, 9651, 18884, 29871]);
  assert.equal(scores[260], -1);
  assert.equal(scores[31999], -(31999 - 259));
  assert.equal(tokens[PHI3_TOKEN_IDS.user], "<|user|>");
  assert.equal(tokens[PHI3_TOKEN_IDS.end], "<|end|>");
  assert.equal(tokens[PHI3_TOKEN_IDS.assistant], "<|assistant|>");
  assert.equal(tokens[32011], "[PAD32011]");
  assert.equal(tokens[32063], "[PAD32063]");
  const histogram = new Map<number, number>();
  for (const t of types) histogram.set(t, (histogram.get(t) ?? 0) + 1);
  assert.deepEqual(Object.fromEntries(histogram), { 1: 31741, 2: 53, 3: 13, 4: 1, 6: 256 });
});

test("phi3 vocabulary equals llama.cpp's ggml-vocab-phi-3.gguf for all 32064 ids", { skip: !existsSync(REFERENCE_VOCAB) && `reference vocab absent: ${REFERENCE_VOCAB}` }, async () => {
  const ref = await readGgufInfo(REFERENCE_VOCAB);
  const refTokens = metadataValue(ref, "tokenizer.ggml.tokens") as string[];
  const refScores = metadataValue(ref, "tokenizer.ggml.scores") as number[];
  const refTypes = metadataValue(ref, "tokenizer.ggml.token_type") as number[];
  const { tokens, scores, types } = phi3Vocab();
  assert.equal(refTokens.length, PHI3_VOCAB_SIZE);
  const mismatches: string[] = [];
  for (let id = 0; id < PHI3_VOCAB_SIZE; id++) {
    // Pad rows are UNKNOWN (2) in this file, UNUSED (5) from newer converters; we follow the file.
    if (tokens[id] !== refTokens[id] || scores[id] !== refScores[id] || types[id] !== refTypes[id]) {
      mismatches.push(`${id}: ${JSON.stringify([tokens[id], scores[id], types[id]])} vs ${JSON.stringify([refTokens[id], refScores[id], refTypes[id]])}`);
    }
  }
  assert.deepEqual(mismatches.slice(0, 20), []);
  for (const key of ["bos_token_id", "eos_token_id", "unknown_token_id", "padding_token_id"]) {
    const expected = { bos_token_id: PHI3_TOKEN_IDS.bos, eos_token_id: PHI3_TOKEN_IDS.eos, unknown_token_id: PHI3_TOKEN_IDS.unk, padding_token_id: PHI3_TOKEN_IDS.pad }[key];
    assert.equal(metadataValue(ref, `tokenizer.ggml.${key}`), expected, key);
  }
});

test("GGUF writer round-trips every KV type and tensor type", async () => {
  const file = join(workDir, "kinds.gguf");
  const metadata = new Map<string, GgufValue>([
    ["general.architecture", gguf.string("test")],
    ["u8", { kind: "uint8", value: 255 }],
    ["i8", { kind: "int8", value: -128 }],
    ["u16", { kind: "uint16", value: 65535 }],
    ["i16", { kind: "int16", value: -32768 }],
    ["u32", gguf.uint32(4294967295)],
    ["i32", gguf.int32(-5)],
    ["f32", gguf.float32(0.5)],
    ["f64", { kind: "float64", value: Math.PI }],
    ["u64", gguf.uint64(2n ** 63n)],
    ["i64", { kind: "int64", value: -(2n ** 40n) }],
    ["b", gguf.bool(true)],
    ["s", gguf.string("héllo ▁ 🙂")],
    ["as", gguf.stringArray(["a", "", "ü"])],
    ["ai", gguf.int32Array([1, -2, 3])],
    ["af", gguf.float32Array(new Float32Array([1.5, -0.25]))],
    ["ab", { kind: "array", itemKind: "bool", value: [true, false] }],
    ["au64", { kind: "array", itemKind: "uint64", value: [1n, 2n ** 50n] }],
  ]);
  const values = randomValues(64 * 3, 7, 0.5);
  const types = [GgmlType.F32, GgmlType.F16, GgmlType.Q8_0, GgmlType.Q4_0];
  const tensors = types.map((type) => ({ name: `t${type}`, dims: [64, 3], type, data: () => [values.subarray(0, 128), values.subarray(128)] }));
  tensors.push({ name: "one-d", dims: [5], type: GgmlType.F32, data: () => [new Float32Array([1, 2, 3, 4, 5])] });
  const { bytes } = await writeGguf(file, { metadata, tensors });
  assert.equal((await stat(file)).size, bytes);
  const info = await readGgufInfo(file);
  assert.equal(info.version, 3);
  assert.deepEqual(info.metadata, new Map([...metadata].map(([k, v]) => [k, normalize(v)])));
  assert.deepEqual(info.tensors.map((t) => [t.name, t.dims, t.type]), tensors.map((t) => [t.name, t.dims, t.type]));
  for (const t of info.tensors) assert.equal((info.dataOffset + t.offset) % 32, 0, `${t.name} aligned`);
  assert.deepEqual(await readTensorValues(file, info, "t0"), values);
  assert.deepEqual(await readTensorValues(file, info, "one-d"), new Float32Array([1, 2, 3, 4, 5]));
  const q8 = await readTensorValues(file, info, `t${GgmlType.Q8_0}`);
  assert.ok(q8.every((v, i) => Math.abs(v - values[i]!) < 0.02));
});

/** The reader returns plain arrays of numbers; typed arrays written compare equal after this. */
function normalize(v: GgufValue): GgufValue {
  if (v.kind !== "array") return v;
  if (v.itemKind === "string" || v.itemKind === "bool" || v.itemKind === "uint64" || v.itemKind === "int64") return v;
  return { kind: "array", itemKind: v.itemKind, value: Array.from(v.value as ArrayLike<number>) };
}

test("GGUF writer rejects bad tensors and removes the partial file", async () => {
  const file = join(workDir, "bad.gguf");
  const metadata = new Map<string, GgufValue>();
  await assert.rejects(writeGguf(file, { metadata, tensors: [{ name: "q", dims: [48, 2], type: GgmlType.Q4_0, data: () => [] }] }), /multiple of Q4_0 block 32/);
  const short = { name: "s", dims: [32, 2], type: GgmlType.Q8_0, data: () => [new Float32Array(32)] };
  await assert.rejects(writeGguf(file, { metadata, tensors: [short] }), /produced 32 of 64/);
  assert.equal(existsSync(file), false);
});

function expectMeta(info: GgufFileInfo, expected: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(expected)) assert.deepEqual(metadataValue(info, key), value, key);
}

test("tiny phi3 model: metadata, tensors and deterministic bytes", async () => {
  const a = join(workDir, "a.gguf");
  const b = join(workDir, "b.gguf");
  const written = await writeTestModel(a, { family: "phi3" });
  await writeTestModel(b, { family: "phi3" });
  assert.equal(written.bytes, (await stat(a)).size);
  const sha = async (f: string) => createHash("sha256").update(await readFile(f)).digest("hex");
  assert.equal(await sha(a), await sha(b), "same options give identical files");
  const info = await readGgufInfo(a);
  const o = TEST_MODEL_DEFAULTS;
  expectMeta(info, {
    "general.architecture": "phi3", "general.name": o.name, "general.file_type": 2, "general.quantization_version": 2,
    "phi3.context_length": 4096, "phi3.rope.scaling.original_context_length": 4096, "phi3.embedding_length": 64,
    "phi3.feed_forward_length": 128, "phi3.block_count": 2, "phi3.attention.head_count": 4, "phi3.attention.head_count_kv": 4,
    "phi3.attention.layer_norm_rms_epsilon": Math.fround(1e-5), "phi3.rope.dimension_count": 16, "phi3.rope.freq_base": 10000,
    "phi3.attention.sliding_window": 0, "tokenizer.ggml.model": "llama", "tokenizer.ggml.pre": "default",
    "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 32000, "tokenizer.ggml.unknown_token_id": 0,
    "tokenizer.ggml.padding_token_id": 32000, "tokenizer.ggml.add_bos_token": false, "tokenizer.ggml.add_eos_token": false,
    "tokenizer.chat_template": T5_PHI35_MINI,
  });
  assert.equal((metadataValue(info, "tokenizer.ggml.tokens") as string[]).length, PHI3_VOCAB_SIZE);
  assert.ok(o.name.toLowerCase().includes("phi-3"), "llama.cpp applies Phi-3 rstrip only for names containing phi-3/phi3");
  const shapes = Object.fromEntries(info.tensors.map((t) => [t.name, [t.dims, t.type]]));
  assert.equal(info.tensors.length, 3 + 6 * 2);
  assert.deepEqual(shapes["token_embd.weight"], [[64, 32064], GgmlType.Q4_0]);
  assert.deepEqual(shapes["output.weight"], [[64, 32064], GgmlType.Q4_0]);
  assert.deepEqual(shapes["output_norm.weight"], [[64], GgmlType.F32]);
  assert.deepEqual(shapes["blk.1.attn_norm.weight"], [[64], GgmlType.F32]);
  assert.deepEqual(shapes["blk.1.attn_qkv.weight"], [[64, 192], GgmlType.Q4_0]);
  assert.deepEqual(shapes["blk.1.attn_output.weight"], [[64, 64], GgmlType.Q4_0]);
  assert.deepEqual(shapes["blk.1.ffn_norm.weight"], [[64], GgmlType.F32]);
  assert.deepEqual(shapes["blk.1.ffn_up.weight"], [[64, 256], GgmlType.Q4_0]);
  assert.deepEqual(shapes["blk.1.ffn_down.weight"], [[128, 64], GgmlType.Q4_0]);
  assert.ok((await readTensorValues(a, info, "blk.0.ffn_norm.weight")).every((v) => v === 1));
  const output = await readTensorValues(a, info, "output.weight");
  const row = (id: number) => output.subarray(id * 64, (id + 1) * 64);
  assert.ok(row(PHI3_TOKEN_IDS.end).every((v) => v === 0), "special-token logits rows are zero");
  const normalRow = row(15043);
  const std = Math.sqrt(normalRow.reduce((s, v) => s + v * v, 0) / 64);
  assert.ok(std > 0.08 && std < 0.18, `output row std ${std} ≈ 1/sqrt(64)`);
});

test("options are validated and cache names follow the options", () => {
  assert.throws(() => resolveTestModelOptions({ embd: 48, quant: "q4_0" }), /multiples of 32/);
  assert.throws(() => resolveTestModelOptions({ heads: 3 }), /embd\/heads/);
  assert.throws(() => resolveTestModelOptions({ heads: 4, headsKv: 3 }), /headsKv/);
  assert.equal(resolveTestModelOptions({ heads: 8 }).headsKv, 8, "headsKv follows heads");
  const base = testModelFileName(resolveTestModelOptions());
  assert.equal(base, testModelFileName(resolveTestModelOptions({ seed: undefined })));
  assert.notEqual(base, testModelFileName(resolveTestModelOptions({ seed: 43 })));
  assert.notEqual(base, testModelFileName(resolveTestModelOptions({ chatTemplate: "x" })));
  // Per-family defaults and rules.
  assert.deepEqual(resolveTestModelOptions({ family: "phimoe" }), testModelDefaults("phimoe"));
  assert.deepEqual([testModelDefaults("phimoe").experts, testModelDefaults("phimoe").expertsUsed], [4, 2]);
  assert.equal(resolveTestModelOptions({ family: "phi4" }).headsKv, 2, "GQA by default, like phi-4");
  assert.equal(resolveTestModelOptions({ family: "phi4", heads: 8 }).headsKv, 8, "headsKv follows an explicit heads");
  assert.equal(resolveTestModelOptions({ family: "phi4-mini" }).chatTemplate, T8_PHI4_MINI);
  assert.throws(() => resolveTestModelOptions({ family: "phi3", experts: 4 }), /phimoe only/);
  assert.throws(() => resolveTestModelOptions({ family: "phimoe", experts: 2, expertsUsed: 3 }), /experts >= expertsUsed/);
  assert.throws(() => resolveTestModelOptions({ family: "phi4", name: "Phi-3 lookalike" }), /must not contain/);
  assert.throws(() => resolveTestModelOptions({ family: "phi4-mini", embd: 96, heads: 8 }), /multiple of 8/);
  assert.throws(() => resolveTestModelOptions({ family: "phi5" as "phi3" }), /unsupported family/);
  assert.notEqual(base, testModelFileName(resolveTestModelOptions({ family: "phi4" })));
});

test("ensureTestModel caches by options", async () => {
  const first = await ensureTestModel();
  const { mtimeMs } = await stat(first);
  assert.equal(await ensureTestModel({}), first);
  assert.equal((await stat(first)).mtimeMs, mtimeMs, "not regenerated");
  assert.match(first, /\.cache\/test-models\/phi3-2L-64e-q4_0-[0-9a-f]{16}\.gguf$/);
  const mini = await ensureTestModel({ family: "phi4-mini" });
  const miniStat = await stat(mini);
  assert.match(mini, /\.cache\/test-models\/phi4-mini-2L-64e-q4_0-[0-9a-f]{16}\.gguf$/);
  assert.equal(await ensureTestModel({ family: "phi4-mini", seed: 42 }), mini);
  assert.equal((await stat(mini)).mtimeMs, miniStat.mtimeMs, "not regenerated");
});

test("node-llama-cpp loads the tiny model: exact tokenization, deterministic greedy output", async () => {
  const warnings = await withLoadedModel(await ensureTestModel(), async (model) => {
    // general.name contains "phi-3", so llama.cpp right-strips after specials: the "\n"s vanish.
    assert.deepEqual(model.tokenize("<|user|>\nHello<|end|>\n<|assistant|>\n", true), [32010, 15043, 32007, 32001]);
    assert.deepEqual(llamaTokenizer.encode("Hello world", false, true), [15043, 3186]);
    assert.deepEqual(model.tokenize("Hello world"), [15043, 3186]);
    assert.equal(model.tokenize("<|user|>", false).length > 1, true, "specials are not parsed in plain text");
    assert.deepEqual([model.tokens.bos, model.tokens.eos, model.tokens.eot], [1, 32000, 32007]);
    await assertDeterministicGreedy(model, model.tokenize("<|user|>\nTell me a story.<|end|>\n<|assistant|>\n", true));
  });
  // Known, harmless: real Phi-3 GGUFs give the same warning (</s> is USER_DEFINED by design).
  // Seeing it also proves the logger captures llama.cpp's warnings, so "no others" means something.
  assert.equal(warnings.filter((w) => /control-looking token: +2 '<\/s>'/.test(w)).length, 1);
  assert.deepEqual(warnings.filter((w) => !/control-looking token: +2 '<\/s>'/.test(w)), []);
});

type LoadedModel = Awaited<ReturnType<Awaited<ReturnType<typeof getLlama>>["loadModel"]>>;

/** Greedy-decodes `count` tokens in a fresh single-threaded context. */
async function greedy(model: LoadedModel, prompt: Token[], count: number): Promise<Token[]> {
  // threads: 1 — the default oversubscribes small CPUs and runs ~500x slower on tiny models.
  const context = await model.createContext({ threads: 1, contextSize: 256 });
  try {
    const out: Token[] = [];
    for await (const token of context.getSequence().evaluate(prompt, { temperature: 0 })) {
      out.push(token);
      if (out.length >= count) break;
    }
    return out;
  } finally {
    await context.dispose();
  }
}

/** node-llama-cpp brands token ids. */
const tok = (id: number) => id as Token;

/**
 * One CPU llama for every load test in this file (getLlama costs ~1 s, and after a dispose a
 * second instance's early log lines can bypass its logger), disposed after the tests.
 */
let sharedLlama: ReturnType<typeof getLlama> | undefined;
const llamaWarnings: string[] = [];
after(async () => {
  if (sharedLlama) await (await sharedLlama).dispose();
});

function cpuLlama(): ReturnType<typeof getLlama> {
  const logger = (level: LlamaLogLevel, message: string) => {
    if (level === "warn" || level === "error" || level === "fatal") llamaWarnings.push(message.trim());
  };
  sharedLlama ??= getLlama({ gpu: false, build: "never", logLevel: "warn" as LlamaLogLevel, logger });
  return sharedLlama;
}

/** Loads a model (on the shared CPU llama), runs `fn`, disposes the model; returns llama.cpp's warnings meanwhile. */
async function withLoadedModel(file: string, fn: (model: LoadedModel) => Promise<void>): Promise<string[]> {
  const llama = await cpuLlama();
  llamaWarnings.length = 0;
  const model = await llama.loadModel({ modelPath: file });
  try {
    await fn(model);
  } finally {
    await model.dispose();
  }
  return [...llamaWarnings];
}

/** Greedy output twice from fresh contexts: equal, full length, and not one token repeated. */
async function assertDeterministicGreedy(model: LoadedModel, prompt: Token[]): Promise<Token[]> {
  const first = await greedy(model, prompt, 8);
  const second = await greedy(model, prompt, 8);
  assert.equal(first.length, 8);
  assert.deepEqual(second, first, "temperature 0 is deterministic");
  assert.ok(new Set(first).size > 4, `varied output, got ${first.join(",")}`);
  return first;
}

/** Texts whose cl100k/o200k encodings llama.cpp v0.5.0 reproduces exactly (see the BPE load tests). */
const BPE_SAMPLE_TEXTS = [
  "Hello world",
  "  indented\n\tcode",
  "naïve café 日本語",
  "I've been 'told he's there, 'RE you sure? 3333333 3.3 🚀 😶\u200d🌫️ ------=======",
  "HTTPServer parsesJSONData CamelCase ÉCOLE Straße\r\n\r\n  trailing   ",
  "function f(x) {\n    return x * 2; // double\n}\n",
];

async function header(family: "phi4" | "phi4-mini" | "phimoe"): Promise<{ file: string; info: GgufFileInfo; shapes: Record<string, [number[], number]> }> {
  const file = await ensureTestModel({ family });
  const info = await readGgufInfo(file);
  const shapes = Object.fromEntries(info.tensors.map((t) => [t.name, [t.dims, t.type] as [number[], number]]));
  return { file, info, shapes };
}

test("tiny phi4 model: cl100k BPE metadata and phi3 tensors", async (t) => {
  const started = performance.now();
  const { file, info, shapes } = await header("phi4");
  t.diagnostic(`phi4: ${(await stat(file)).size} bytes, ensured in ${Math.round(performance.now() - started)} ms`);
  expectMeta(info, {
    "general.architecture": "phi3", "general.name": "Phi 4 (phiserve test model)", "phi3.rope.freq_base": 250000,
    "phi3.rope.dimension_count": 16, "phi3.attention.head_count_kv": 2, "phi3.attention.sliding_window": 0,
    "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "dbrx", "tokenizer.ggml.bos_token_id": PHI4_TOKEN_IDS.endOfText,
    "tokenizer.ggml.eos_token_id": PHI4_TOKEN_IDS.imEnd, "tokenizer.ggml.padding_token_id": PHI4_TOKEN_IDS.pad,
    "tokenizer.ggml.add_bos_token": false, "tokenizer.ggml.add_eos_token": false, "tokenizer.chat_template": T7B_PHI4,
  });
  assert.equal(metadataValue(info, "tokenizer.ggml.scores"), undefined, "BPE vocabularies carry no scores");
  assert.equal((metadataValue(info, "tokenizer.ggml.tokens") as string[]).length, PHI4_VOCAB_SIZE);
  assert.deepEqual((metadataValue(info, "tokenizer.ggml.merges") as string[]).slice(0, 4), ["Ġ Ġ", "ĠĠ ĠĠ", "i n", "Ġ t"]);
  assert.deepEqual(shapes["token_embd.weight"], [[64, PHI4_VOCAB_SIZE], GgmlType.Q4_0]);
  assert.deepEqual(shapes["output.weight"], [[64, PHI4_VOCAB_SIZE], GgmlType.Q4_0]);
  assert.deepEqual(shapes["blk.1.attn_qkv.weight"], [[64, 64 + 2 * 32], GgmlType.Q4_0]);
  const output = await readTensorValues(file, info, "output.weight");
  const rowRms = (id: number) => Math.sqrt(output.subarray(id * 64, (id + 1) * 64).reduce((s, v) => s + v * v, 0) / 64);
  assert.equal(rowRms(PHI4_TOKEN_IDS.imEnd), 0, "control rows are zero");
  const leadByte = (metadataValue(info, "tokenizer.ggml.tokens") as string[]).indexOf(byteToUnicode()[0xe6]!);
  assert.ok(leadByte >= 0);
  assert.equal(rowRms(leadByte), 0, "a lone UTF-8 lead byte is never emitted");
  assert.ok(rowRms(9906) > 0.08, "normal rows are random");
});

test("tiny phi4-mini model: o200k BPE metadata, partial rotary, tied embeddings that can emit tool calls", async (t) => {
  const started = performance.now();
  const { file, info, shapes } = await header("phi4-mini");
  t.diagnostic(`phi4-mini: ${(await stat(file)).size} bytes, ensured in ${Math.round(performance.now() - started)} ms`);
  const eot = PHI4_MINI_TOKEN_IDS.endOfText;
  expectMeta(info, {
    "general.architecture": "phi3", "general.name": "Phi 4 mini instruct (phiserve test model)", "phi3.rope.freq_base": 10000,
    "phi3.rope.dimension_count": 12, "phi3.attention.head_count_kv": 2, "tokenizer.ggml.model": "gpt2",
    "tokenizer.ggml.pre": "gpt-4o", "tokenizer.ggml.bos_token_id": eot, "tokenizer.ggml.eos_token_id": eot,
    "tokenizer.ggml.unknown_token_id": eot, "tokenizer.ggml.padding_token_id": eot, "tokenizer.ggml.add_bos_token": false,
    "tokenizer.chat_template": T8_PHI4_MINI,
  });
  assert.equal((metadataValue(info, "tokenizer.ggml.tokens") as string[]).length, PHI4_MINI_VOCAB_SIZE);
  const merges = metadataValue(info, "tokenizer.ggml.merges") as string[];
  assert.equal(merges.length, 199742);
  assert.deepEqual(merges.slice(0, 4), ["Ġ Ġ", "ĠĠ ĠĠ", "i n", "e r"]);
  assert.equal(shapes["output.weight"], undefined, "tied: llama.cpp falls back to token_embd");
  assert.deepEqual(shapes["token_embd.weight"], [[64, PHI4_MINI_VOCAB_SIZE], GgmlType.Q4_0]);
  // Reserved dims 0–3: out of the logits (norm 0); the rest a random ±1 norm.
  const norm = await readTensorValues(file, info, "output_norm.weight");
  assert.deepEqual([...norm.subarray(0, 4)], [0, 0, 0, 0]);
  assert.ok(norm.subarray(4).every((v) => v === 1 || v === -1));
  const embd = await readTensorValues(file, info, "token_embd.weight");
  const nonZero = (id: number, from: number, to: number) => embd.subarray(id * 64 + from, id * 64 + to).some((v) => v !== 0);
  for (const id of [PHI4_MINI_TOKEN_IDS.end, PHI4_MINI_TOKEN_IDS.assistant, eot, 200030]) {
    assert.ok(nonZero(id, 0, 4) && !nonZero(id, 4, 64), `token ${id}: input embedding only in the reserved dims, logit 0`);
  }
  for (const id of [PHI4_MINI_TOKEN_IDS.toolCall, PHI4_MINI_TOKEN_IDS.toolCallEnd, 13225]) {
    assert.ok(nonZero(id, 4, 64), `token ${id} can be emitted`);
  }
});

test("tiny phimoe model: phimoe metadata and MoE tensors", async (t) => {
  const started = performance.now();
  const { file, info, shapes } = await header("phimoe");
  t.diagnostic(`phimoe: ${(await stat(file)).size} bytes, ensured in ${Math.round(performance.now() - started)} ms`);
  expectMeta(info, {
    "general.architecture": "phimoe", "general.name": "Phi-3.5-MoE-instruct (phiserve test model)",
    "phimoe.expert_count": 4, "phimoe.expert_used_count": 2, "phimoe.block_count": 2, "phimoe.embedding_length": 64,
    "phimoe.feed_forward_length": 128, "phimoe.attention.head_count": 4, "phimoe.attention.head_count_kv": 2,
    "phimoe.rope.dimension_count": 16, "tokenizer.ggml.model": "llama", "tokenizer.chat_template": T5_PHI35_MINI,
  });
  assert.equal(info.tensors.length, 5 + 16 * 2);
  const q4 = GgmlType.Q4_0;
  const f32 = GgmlType.F32;
  assert.deepEqual(shapes["output_norm.bias"], [[64], f32]);
  assert.deepEqual(shapes["output.weight"], [[64, PHI3_VOCAB_SIZE], q4]);
  assert.deepEqual(shapes["output.bias"], [[PHI3_VOCAB_SIZE], f32]);
  assert.deepEqual(shapes["blk.1.attn_norm.bias"], [[64], f32]);
  assert.deepEqual(shapes["blk.1.attn_q.weight"], [[64, 64], q4]);
  assert.deepEqual(shapes["blk.1.attn_k.weight"], [[64, 32], q4]);
  assert.deepEqual(shapes["blk.1.attn_v.bias"], [[32], f32]);
  assert.deepEqual(shapes["blk.1.attn_output.bias"], [[64], f32]);
  assert.deepEqual(shapes["blk.1.ffn_norm.bias"], [[64], f32]);
  assert.deepEqual(shapes["blk.1.ffn_gate_inp.weight"], [[64, 4], f32]);
  assert.deepEqual(shapes["blk.1.ffn_gate_exps.weight"], [[64, 128, 4], q4]);
  assert.deepEqual(shapes["blk.1.ffn_up_exps.weight"], [[64, 128, 4], q4]);
  assert.deepEqual(shapes["blk.1.ffn_down_exps.weight"], [[128, 64, 4], q4]);
  assert.equal(shapes["blk.0.attn_qkv.weight"], undefined);
});

test("node-llama-cpp loads the phi4 model: cl100k tokenization, ChatML specials, deterministic greedy output", async (t) => {
  const file = await ensureTestModel({ family: "phi4" });
  const started = performance.now();
  const warnings = await withLoadedModel(file, async (model) => {
    t.diagnostic(`phi4 load ${Math.round(performance.now() - started)} ms`);
    const ids = PHI4_TOKEN_IDS;
    const enc = getEncoding("cl100k_base", { "<|im_start|>": ids.imStart, "<|im_end|>": ids.imEnd, "<|im_sep|>": ids.imSep });
    assert.deepEqual(model.tokenize("Hello world"), [9906, 1917]);
    for (const text of BPE_SAMPLE_TEXTS) assert.deepEqual(model.tokenize(text), enc.encode(text), JSON.stringify(text));
    const chat = "<|im_start|>user<|im_sep|>Tell me a story.<|im_end|><|im_start|>assistant<|im_sep|>";
    const prompt = model.tokenize(chat, true);
    assert.deepEqual(prompt, enc.encode(chat, "all"));
    assert.deepEqual([prompt[0], prompt[2], prompt.at(-4)], [ids.imStart, ids.imSep, ids.imEnd]);
    assert.deepEqual(model.tokenize("<|im_start|>", true), [ids.imStart]);
    assert.deepEqual(model.tokenize("<|im_end|>", true), [ids.imEnd]);
    assert.ok(model.tokenize("<|im_end|>", false).length > 1, "specials are not parsed in plain text");
    assert.deepEqual([model.tokens.bos, model.tokens.eos], [ids.endOfText, ids.imEnd]);
    assert.ok(model.isEogToken(tok(ids.imEnd)) && model.isEogToken(tok(ids.endOfText)));
    await assertDeterministicGreedy(model, prompt);
  });
  assert.deepEqual(warnings, []);
});

test("node-llama-cpp loads the phi4-mini model: o200k tokenization, Phi specials and tool-call tokens, deterministic greedy output", async (t) => {
  const file = await ensureTestModel({ family: "phi4-mini" });
  const started = performance.now();
  const warnings = await withLoadedModel(file, async (model) => {
    t.diagnostic(`phi4-mini load ${Math.round(performance.now() - started)} ms`);
    const ids = PHI4_MINI_TOKEN_IDS;
    const specials = {
      "<|assistant|>": ids.assistant, "<|end|>": ids.end, "<|user|>": ids.user, "<|system|>": ids.system,
      "<|tool|>": ids.tool, "<|/tool|>": ids.toolEnd, "<|tool_call|>": ids.toolCall, "<|/tool_call|>": ids.toolCallEnd,
    };
    const enc = getEncoding("o200k_base", specials);
    assert.deepEqual(model.tokenize("Hello world"), [13225, 2375]);
    for (const text of BPE_SAMPLE_TEXTS) assert.deepEqual(model.tokenize(text), enc.encode(text), JSON.stringify(text));
    for (const [text, id] of Object.entries(specials)) assert.deepEqual(model.tokenize(text, true), [id], text);
    const system = '<|system|>You are helpful.<|tool|>[{"name": "get_weather"}]<|/tool|><|end|>';
    const chat = `${system}<|user|>Tell me a story.<|end|><|assistant|>`;
    const prompt = model.tokenize(chat, true);
    assert.deepEqual(prompt, enc.encode(chat, "all"));
    const call = '<|tool_call|>[{"name": "get_weather", "arguments": {}}]<|/tool_call|>';
    const callTokens = model.tokenize(call, true);
    assert.deepEqual([callTokens[0], callTokens.at(-1)], [ids.toolCall, ids.toolCallEnd]);
    // CONTROL (tool_call) tokens need special parsing; USER_DEFINED (<|tool|>) are always whole.
    assert.ok(model.tokenize("<|tool_call|>", false).length > 1);
    assert.deepEqual(model.tokenize("<|tool|>", false), [ids.tool]);
    assert.equal(model.detokenize([tok(ids.toolCall)], true), "<|tool_call|>");
    assert.ok(model.getTokenAttributes(tok(ids.toolCall)).control && model.getTokenAttributes(tok(ids.tool)).userDefined);
    assert.deepEqual([model.tokens.bos, model.tokens.eos], [ids.endOfText, ids.endOfText]);
    assert.ok(model.isEogToken(tok(ids.end)) && model.isEogToken(tok(ids.endOfText)), "<|end|> is EOG by name");
    assert.ok(!model.isEogToken(tok(ids.toolCall)) && !model.isEogToken(tok(ids.assistant)));
    await assertDeterministicGreedy(model, prompt);
  });
  assert.deepEqual(warnings, []);
});

test("node-llama-cpp loads the phimoe model: Phi-3 tokenization, MoE generation is deterministic", async (t) => {
  const file = await ensureTestModel({ family: "phimoe" });
  const started = performance.now();
  const warnings = await withLoadedModel(file, async (model) => {
    t.diagnostic(`phimoe load ${Math.round(performance.now() - started)} ms`);
    assert.deepEqual(model.tokenize("Hello world"), [15043, 3186]);
    // The name contains "phi-3", so llama.cpp right-strips after specials, as for phi3.
    assert.deepEqual(model.tokenize("<|user|>\nHello<|end|>\n<|assistant|>\n", true), [32010, 15043, 32007, 32001]);
    assert.deepEqual([model.tokens.bos, model.tokens.eos], [1, 32000]);
    await assertDeterministicGreedy(model, model.tokenize("<|user|>\nTell me a story.<|end|>\n<|assistant|>\n", true));
  });
  // Known, harmless: real Phi-3 GGUFs give the same warning (</s> is USER_DEFINED by design).
  // Seeing it also proves the logger captures llama.cpp's warnings, so "no others" means something.
  assert.equal(warnings.filter((w) => /control-looking token: +2 '<\/s>'/.test(w)).length, 1);
  assert.deepEqual(warnings.filter((w) => !/control-looking token: +2 '<\/s>'/.test(w)), []);
});
