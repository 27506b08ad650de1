import assert from "node:assert/strict";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Tokenizer } from "@huggingface/tokenizers";
import * as ort from "onnxruntime-node";
import { phi3vImageTokenCount } from "./phi3v-graphs.ts";
import { PHI3V_FILES, ensurePhi3vTestModel, phi3vTestModelDirName, phi3vTestModelFiles, resolvePhi3vTestModelOptions } from "./phi3v-test-model.ts";

const HIDDEN = 32;
const KV_HEADS = 2;
const HEAD_DIM = 8;
const LAYERS = 2;
const VOCAB = 32064;
const CROP = 3 * 336 * 336;

let dir = "";
let vision: ort.InferenceSession;
let embedding: ort.InferenceSession;
let decoder: ort.InferenceSession;

before(async () => {
  dir = await ensurePhi3vTestModel();
  [vision, embedding, decoder] = await Promise.all(
    [PHI3V_FILES.vision, PHI3V_FILES.embedding, PHI3V_FILES.decoder].map((name) => ort.InferenceSession.create(join(dir, name))),
  ) as [ort.InferenceSession, ort.InferenceSession, ort.InferenceSession];
});
after(async () => {
  await Promise.all([vision?.release(), embedding?.release(), decoder?.release()]);
});

const i64 = (values: readonly number[], dims: readonly number[]) => new ort.Tensor("int64", BigInt64Array.from(values, (v) => BigInt(v)), dims);
const f32 = (values: Float32Array, dims: readonly number[]) => new ort.Tensor("float32", values, dims);
const data = (tensor: ort.Tensor | undefined) => tensor!.data as Float32Array;

/** Deterministic "image": crop c holds a smooth pattern shifted by c and `phase`. */
function pixels(crops: number, phase = 0): Float32Array {
  const out = new Float32Array(crops * CROP);
  for (let i = 0; i < out.length; i++) out[i] = Math.sin(i * 0.0007 + phase) * 1.5;
  return out;
}

async function imageFeatures(pixelValues: Float32Array, images: number, crops: number, sizes: number[][]): Promise<ort.Tensor> {
  const out = await vision.run({ pixel_values: f32(pixelValues, [images, crops, 3, 336, 336]), image_sizes: i64(sizes.flat(), [images, 2]) });
  return out.image_features!;
}

describe("vision graph", () => {
  test("emits the formula's row count from image_sizes: landscape 2353, portrait 2377", async () => {
    const px = pixels(17);
    for (const [size, expected] of [[[1008, 1680], 2353], [[1680, 1008], 2377]] as const) {
      const features = await imageFeatures(px, 1, 17, [[...size]]);
      assert.deepEqual(features.dims, [expected, HIDDEN]);
      assert.equal(phi3vImageTokenCount(size[0], size[1]), expected);
      assert.ok(data(features).every(Number.isFinite));
    }
  });

  test("several images: rows are the sum of each image's count", async () => {
    const sizes = [[336, 336], [672, 1344]];
    const features = await imageFeatures(pixels(2 * 5), 2, 5, sizes);
    assert.deepEqual(features.dims, [phi3vImageTokenCount(336, 336) + phi3vImageTokenCount(672, 1344), HIDDEN]);
    assert.equal(phi3vImageTokenCount(336, 336), 2 * 144 + 1 + 2 * 12);
  });

  test("features depend on the pixels: same input same rows, another image other rows", async () => {
    const sizes = [[672, 672]];
    const a = data(await imageFeatures(pixels(5), 1, 5, sizes));
    const again = data(await imageFeatures(pixels(5), 1, 5, sizes));
    const b = data(await imageFeatures(pixels(5, 1), 1, 5, sizes));
    assert.deepEqual(a, again);
    let changedRows = 0;
    for (let row = 0; row < a.length / HIDDEN; row++) {
      const offset = row * HIDDEN;
      if (a.subarray(offset, offset + HIDDEN).some((v, d) => Math.abs(v - b[offset + d]!) > 1e-3)) changedRows++;
    }
    assert.equal(changedRows, a.length / HIDDEN, "every row changes with the image");
  });
});

describe("embedding graph", () => {
  async function embed(ids: number[][], features: Float32Array, rows: number): Promise<Float32Array> {
    const out = await embedding.run({ input_ids: i64(ids.flat(), [ids.length, ids[0]!.length]), image_features: f32(features, [rows, HIDDEN]) });
    assert.deepEqual(out.inputs_embeds!.dims, [ids.length, ids[0]!.length, HIDDEN]);
    return data(out.inputs_embeds);
  }
  const row = (values: Float32Array, index: number) => [...values.subarray(index * HIDDEN, (index + 1) * HIDDEN)];

  test("scatters image rows, in order, into the negative-id positions of every batch row", async () => {
    const features = Float32Array.from({ length: 5 * HIDDEN }, (_, i) => 100 + i);
    const ids = [
      [1, 32010, -1, -1, 8449],
      [1, -1, -1, -1, 29973],
    ];
    const embeds = await embed(ids, features, 5);
    const textOnly = await embed([[1, 32010, 8449, 29973]], new Float32Array(0), 0);
    const expected = [
      ...row(textOnly, 0), ...row(textOnly, 1), ...row(features, 0), ...row(features, 1), ...row(textOnly, 2),
      ...row(textOnly, 0), ...row(features, 2), ...row(features, 3), ...row(features, 4), ...row(textOnly, 3),
    ];
    assert.deepEqual([...embeds], expected);
  });

  test("text-only input with empty [0, hidden] image features works; ids index a seeded table", async () => {
    const embeds = await embed([[1, 8449, 8449]], new Float32Array(0), 0);
    assert.deepEqual(row(embeds, 1), row(embeds, 2));
    assert.notDeepEqual(row(embeds, 0), row(embeds, 1));
  });
});

describe("text decoder", () => {
  const emptyPast = (batch: number) => f32(new Float32Array(0), [batch, KV_HEADS, 0, HEAD_DIM]);

  async function embedIds(ids: number[][]): Promise<ort.Tensor> {
    const out = await embedding.run({ input_ids: i64(ids.flat(), [ids.length, ids[0]!.length]), image_features: f32(new Float32Array(0), [0, HIDDEN]) });
    return out.inputs_embeds!;
  }

  async function step(embeds: ort.Tensor, mask: number[][], past: ort.Tensor[] | undefined): Promise<{ logits: ort.Tensor; present: ort.Tensor[] }> {
    const feeds: Record<string, ort.Tensor> = { inputs_embeds: embeds, attention_mask: i64(mask.flat(), [mask.length, mask[0]!.length]) };
    for (let i = 0; i < LAYERS; i++) {
      feeds[`past_key_values.${i}.key`] = past?.[2 * i] ?? emptyPast(mask.length);
      feeds[`past_key_values.${i}.value`] = past?.[2 * i + 1] ?? emptyPast(mask.length);
    }
    const out = await decoder.run(feeds);
    const present = Array.from({ length: LAYERS }, (_, i) => [out[`present.${i}.key`]!, out[`present.${i}.value`]!]).flat();
    return { logits: out.logits!, present };
  }

  /** Logits [vocab] of batch row `b`, position `s`. */
  const logitsAt = (logits: ort.Tensor, b: number, s: number) => {
    const seq = logits.dims[1]!;
    return data(logits).subarray((b * seq + s) * VOCAB, (b * seq + s + 1) * VOCAB);
  };
  const maxAbsDifference = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
  const argmax = (values: Float32Array) => values.reduce((best, v, i) => (v > values[best]! ? i : best), 0);

  const PROMPT = [1, 32010, 29871, 13, 8449, 18036, 15997, 1048, 365, 26369, 32007, 29871, 13, 32001];

  test("prefill logits equal token-by-token decoding with the KV cache (1e-4)", async () => {
    const prefill = await step(await embedIds([PROMPT]), [PROMPT.map(() => 1)], undefined);
    assert.deepEqual(prefill.logits.dims, [1, PROMPT.length, VOCAB]);
    assert.deepEqual(prefill.present[0]!.dims, [1, KV_HEADS, PROMPT.length, HEAD_DIM]);
    let past: ort.Tensor[] | undefined;
    for (let i = 0; i < PROMPT.length; i++) {
      const { logits, present } = await step(await embedIds([[PROMPT[i]!]]), [PROMPT.slice(0, i + 1).map(() => 1)], past);
      assert.deepEqual(present[1]!.dims, [1, KV_HEADS, i + 1, HEAD_DIM]);
      const difference = maxAbsDifference(logitsAt(logits, 0, 0), logitsAt(prefill.logits, 0, i));
      assert.ok(difference < 1e-4, `position ${i}: ${difference}`);
      past = present;
    }
    // A 3-token chunk on top of a cache also matches (seq > 1 with past > 0).
    const head = PROMPT.slice(0, 11);
    const first = await step(await embedIds([head]), [head.map(() => 1)], undefined);
    const chunk = await step(await embedIds([PROMPT.slice(11)]), [PROMPT.map(() => 1)], first.present);
    for (let s = 0; s < 3; s++) assert.ok(maxAbsDifference(logitsAt(chunk.logits, 0, s), logitsAt(prefill.logits, 0, 11 + s)) < 1e-4);
  });

  test("a right-padded batch of 2 gives each row its logits alone, then decodes on", async () => {
    const short = PROMPT.slice(0, 9);
    const padded = [PROMPT, [...short, ...Array(PROMPT.length - short.length).fill(32000)]];
    const mask = [PROMPT.map(() => 1), PROMPT.map((_, i) => (i < short.length ? 1 : 0))];
    const batch = await step(await embedIds(padded), mask, undefined);
    const alone = await step(await embedIds([short]), [short.map(() => 1)], undefined);
    assert.ok(data(batch.logits).every(Number.isFinite), "padded rows stay finite");
    for (let s = 0; s < short.length; s++) assert.ok(maxAbsDifference(logitsAt(batch.logits, 1, s), logitsAt(alone.logits, 0, s)) < 1e-4, `position ${s}`);
    // Decode one token per row: the short row's padding stays masked, and its position continues at 9.
    const next = [argmax(logitsAt(batch.logits, 0, PROMPT.length - 1)), argmax(logitsAt(alone.logits, 0, short.length - 1))];
    const decoded = await step(await embedIds([[next[0]!], [next[1]!]]), mask.map((m) => [...m, 1]), batch.present);
    const aloneNext = await step(await embedIds([[next[1]!]]), [[...short, 0].map(() => 1)], alone.present);
    assert.ok(maxAbsDifference(logitsAt(decoded.logits, 1, 0), logitsAt(aloneNext.logits, 0, 0)) < 1e-4);
  });

  test("left padding: positions come from the attention mask", async () => {
    const short = PROMPT.slice(0, 6);
    const pad = PROMPT.length - short.length;
    const batch = await step(
      await embedIds([PROMPT, [...Array(pad).fill(32000), ...short]]),
      [PROMPT.map(() => 1), PROMPT.map((_, i) => (i < pad ? 0 : 1))],
      undefined,
    );
    const alone = await step(await embedIds([short]), [short.map(() => 1)], undefined);
    for (let s = 0; s < short.length; s++) assert.ok(maxAbsDifference(logitsAt(batch.logits, 1, pad + s), logitsAt(alone.logits, 0, s)) < 1e-4);
  });

  test("greedy decoding varies, never picks control/added/padding ids, and depends on the image", async () => {
    async function greedy(prefix: ort.Tensor, length: number, steps: number): Promise<number[]> {
      let { logits, present } = await step(prefix, [Array(length).fill(1)], undefined);
      const out: number[] = [];
      for (let i = 0; i < steps; i++) {
        const next = argmax(logitsAt(logits, 0, logits.dims[1]! - 1));
        out.push(next);
        ({ logits, present } = await step(await embedIds([[next]]), [Array(length + i + 1).fill(1)], present));
      }
      return out;
    }
    const text = await greedy(await embedIds([PROMPT]), PROMPT.length, 16);
    assert.ok(new Set(text).size >= 8, `distinct greedy tokens: ${text.join(" ")}`);
    assert.ok(text.every((id) => id >= 259 && id < 32000), "only NORMAL pieces");

    const size = [[336, 672]];
    const rows = phi3vImageTokenCount(336, 672);
    const ids = [1, 32010, 29871, 13, ...Array(rows).fill(-1), 8449, 32007, 29871, 13, 32001];
    const withImage = async (phase: number) => {
      const features = await imageFeatures(pixels(3, phase), 1, 3, size);
      const embeds = (await embedding.run({ input_ids: i64(ids, [1, ids.length]), image_features: features })).inputs_embeds!;
      return greedy(embeds, ids.length, 6);
    };
    assert.notDeepEqual(await withImage(0), await withImage(2));
  });
});

describe("folder", () => {
  test("holds the ORT GenAI layout; genai_config names the graphs and their IO", async () => {
    const names = (await readdir(dir)).sort();
    assert.deepEqual(names, [
      "genai_config.json", PHI3V_FILES.vision, PHI3V_FILES.embedding, PHI3V_FILES.decoder,
      "phiserve-test-model.json", "processor_config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json",
    ].sort());
    const config = JSON.parse(await readFile(join(dir, "genai_config.json"), "utf8"));
    assert.equal(config.model.type, "phi3v");
    assert.equal(config.model.vocab_size, VOCAB);
    assert.equal(config.model.context_length, 131072);
    assert.deepEqual(config.model.eos_token_id, [32007, 32001, 32000]);
    const d = config.model.decoder;
    assert.deepEqual([d.hidden_size, d.head_size, d.num_attention_heads, d.num_key_value_heads, d.num_hidden_layers], [HIDDEN, HEAD_DIM, 4, KV_HEADS, LAYERS]);
    assert.deepEqual(vision.inputNames, Object.values(config.model.vision.inputs));
    assert.deepEqual(vision.outputNames, Object.values(config.model.vision.outputs));
    assert.deepEqual(embedding.inputNames, Object.values(config.model.embedding.inputs));
    const pastNames = Array.from({ length: LAYERS }, (_, i) => [d.inputs.past_key_names.replace("%d", i), d.inputs.past_value_names.replace("%d", i)]).flat();
    assert.deepEqual(decoder.inputNames, [d.inputs.inputs_embeds, d.inputs.attention_mask, ...pastNames]);
    const presentNames = Array.from({ length: LAYERS }, (_, i) => [d.outputs.present_key_names.replace("%d", i), d.outputs.present_value_names.replace("%d", i)]).flat();
    assert.deepEqual(decoder.outputNames, [d.outputs.logits, ...presentNames]);
    const processor = JSON.parse(await readFile(join(dir, "processor_config.json"), "utf8"));
    assert.deepEqual(processor.processor.transforms[2].operation.attrs, { num_crops: 16, num_img_tokens: 144 });
  });

  test("its tokenizer files load; a rendered turn gives the reference ids (▁ and <0x0A> before the text)", async () => {
    const tokenizer = new Tokenizer(JSON.parse(await readFile(join(dir, "tokenizer.json"), "utf8")), JSON.parse(await readFile(join(dir, "tokenizer_config.json"), "utf8")));
    assert.deepEqual(tokenizer.encode("<|user|>\nHi<|end|>\n<|assistant|>\n").ids, [1, 32010, 29871, 13, 18567, 32007, 29871, 13, 32001]);
  });

  test("bytes are a function of the options: same seed identical, another seed other weights", () => {
    const a = phi3vTestModelFiles({ seed: 5, layers: 1 });
    const b = phi3vTestModelFiles({ seed: 5, layers: 1 });
    const c = phi3vTestModelFiles({ seed: 6, layers: 1 });
    for (const [name, bytes] of a) assert.ok(Buffer.from(bytes).equals(Buffer.from(b.get(name)!)), name);
    for (const name of Object.values(PHI3V_FILES)) assert.ok(!Buffer.from(a.get(name)!).equals(Buffer.from(c.get(name)!)), name);
    assert.ok(Buffer.from(a.get("tokenizer.json")!).equals(Buffer.from(c.get("tokenizer.json")!)));
    assert.notEqual(phi3vTestModelDirName({ seed: 5 }), phi3vTestModelDirName({ seed: 6 }));
    assert.equal(phi3vTestModelDirName({}), phi3vTestModelDirName({ seed: 42, hidden: 32 }));
  });

  test("the cache returns the same folder; invalid shapes are refused clearly", async () => {
    assert.equal(await ensurePhi3vTestModel({}), dir);
    assert.throws(() => resolvePhi3vTestModelOptions({ heads: 3 }), /hidden \(32\) \/ heads \(3\) must be an even integer/);
    assert.throws(() => resolvePhi3vTestModelOptions({ kvHeads: 3 }), /multiple of kvHeads/);
    assert.throws(() => resolvePhi3vTestModelOptions({ layers: 0 }), /layers must be a positive integer/);
  });
});
