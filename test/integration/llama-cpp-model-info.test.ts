/**
 * What the llama.cpp engine reports about a loaded model (seeded test models: the real Phi-3 and
 * Phi-4-mini vocabularies), in particular the add-BOS flag, and that tokenizing never adds BOS.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { ensureTestModel, type TestModelOptions } from "../../src/model-factory/test-models.ts";
import { LlamaCppEngine } from "../../src/engine/llama-cpp/llama-cpp-engine.ts";

async function withEngine<T>(model: Partial<TestModelOptions>, body: (engine: LlamaCppEngine) => T | Promise<T>): Promise<T> {
  const modelPath = await ensureTestModel(model);
  const engine = new LlamaCppEngine({ modelPath, contextSize: 256, parallel: 1, threads: 1, batchSize: 256, gpu: "cpu", extraStopTokens: [] }, pino({ level: "silent" }));
  await engine.load();
  try {
    return await body(engine);
  } finally {
    await engine.close();
  }
}

const count = async (engine: LlamaCppEngine, prompt: string) => (await engine.countTokens({ prompt }, 256)).tokens;
const TEXT = "<|user|>\nHow many languages are in the world?<|end|>\n<|assistant|>\n";

test("addBosToken is the GGUF's tokenizer.ggml.add_bos_token, and tokenizing never adds BOS itself", async () => {
  const without = await withEngine({ addBosToken: false }, async (engine) => ({ info: engine.modelInfo(), count: await count(engine, TEXT), bos: await count(engine, "<s>") }));
  const withBos = await withEngine({ addBosToken: true }, async (engine) => ({ info: engine.modelInfo(), count: await count(engine, TEXT) }));
  assert.equal(without.info.addBosToken, false);
  assert.equal(withBos.info.addBosToken, true);
  assert.equal(without.info.bosToken, "<s>");
  assert.equal(without.bos, 1, "<s> is one special token");
  assert.equal(withBos.count, without.count, "the add-BOS flag does not change what countTokens/generate evaluate");
});

test("a BPE (Phi-4-mini) model without add-BOS reports false", async () => {
  const info = await withEngine({ family: "phi4-mini" }, (engine) => engine.modelInfo());
  assert.equal(info.addBosToken, false);
  assert.equal(info.vocabSize > 100_000, true);
});
