import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensurePhi3vTestModel } from "../../model-factory/phi3v-test-model.ts";
import { readOnnxModelFolder } from "./onnx-model-folder.ts";

const scratch = mkdtempSync(join(tmpdir(), "onnx-folder-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

function folderWith(name: string, files: Record<string, string | object>): string {
  const dir = join(scratch, name);
  for (const [file, content] of Object.entries(files)) {
    mkdirSync(join(dir, file, ".."), { recursive: true });
    writeFileSync(join(dir, file), typeof content === "string" ? content : JSON.stringify(content));
  }
  return dir;
}

test("the ORT GenAI layout: graphs, IO names, EOS ids, context, num_crops and tokenizer files", async () => {
  const dir = await ensurePhi3vTestModel();
  const model = readOnnxModelFolder(dir);
  assert.equal(model.layout, "ort-genai");
  assert.match(model.graphs.decoder.file, /text\.onnx$/);
  assert.equal(model.graphs.decoder.pastKey, "past_key_values.%d.key");
  assert.equal(model.graphs.vision.pixelValues, "pixel_values");
  assert.deepEqual(model.eosTokenIds, [32007, 32001, 32000]);
  assert.equal(model.contextLength, 131072);
  assert.equal(model.numCrops, 16);
  assert.equal(model.numLayers, 2);
  assert.ok(model.chatTemplate?.includes("<|end|>"));
  assert.ok(model.weightBytes > 0);
  // A single eos_token_id is a list of one.
  const genai = JSON.parse(readFileSync(join(dir, "genai_config.json"), "utf8"));
  genai.model.eos_token_id = 32007;
  const copy = folderWith("genai-one-eos", { "genai_config.json": genai, "tokenizer.json": readFileSync(join(dir, "tokenizer.json"), "utf8") });
  for (const name of [genai.model.decoder.filename, genai.model.embedding.filename, genai.model.vision.filename]) writeFileSync(join(copy, name), "");
  assert.deepEqual(readOnnxModelFolder(copy).eosTokenIds, [32007]);
});

test("the transformers.js layout: the most precise dtype of each graph is taken", () => {
  const dir = folderWith("tjs", {
    "config.json": { model_type: "phi3_v", hidden_size: 3072, num_attention_heads: 32, num_hidden_layers: 32, vocab_size: 32064, max_position_embeddings: 131072, eos_token_id: [32007, 32001, 32000] },
    "preprocessor_config.json": { num_crops: 4, num_img_tokens: 144 },
    "tokenizer.json": { added_tokens: [] },
    "tokenizer_config.json": { chat_template: "{{ x }}" },
    "onnx/model_q4.onnx": "q4",
    "onnx/model_fp16.onnx": "fp16",
    "onnx/vision_encoder_q4f16.onnx": "x",
    "onnx/vision_encoder_q4.onnx": "x",
    "onnx/prepare_inputs_embeds.onnx": "x",
    "onnx/model_fp16.onnx_data": "0123456789",
  });
  const model = readOnnxModelFolder(dir);
  assert.equal(model.layout, "transformers.js");
  assert.match(model.graphs.decoder.file, /model_fp16\.onnx$/);
  assert.match(model.graphs.vision.file, /vision_encoder_q4\.onnx$/);
  assert.match(model.graphs.embedding.file, /prepare_inputs_embeds\.onnx$/);
  assert.equal(model.headSize, 96);
  assert.equal(model.numKeyValueHeads, 32);
  assert.equal(model.numCrops, 4);
  assert.equal(model.chatTemplate, "{{ x }}");
  assert.equal(model.weightBytes, 4 + 10 + 1 + 1, "graph files plus external data");
});

test("a folder that is neither layout, another model type or a missing graph is a clear error", () => {
  assert.throws(() => readOnnxModelFolder(join(scratch, "nope")), /does not exist/);
  assert.throws(() => readOnnxModelFolder(folderWith("empty", { "README.md": "" })), /not a Phi-3\/3\.5-vision ONNX model folder: expected genai_config\.json/);
  assert.throws(() => readOnnxModelFolder(folderWith("llama", { "config.json": { model_type: "llama" } })), /model_type "llama".*phi3_v/);
  assert.throws(() => readOnnxModelFolder(folderWith("phi4", { "genai_config.json": { model: { type: "phi4mm" } } })), /model\.type is "phi4mm"/);
  assert.throws(
    () => readOnnxModelFolder(folderWith("missing", { "genai_config.json": { model: { type: "phi3v", decoder: { filename: "text.onnx" }, embedding: { filename: "e.onnx" }, vision: { filename: "v.onnx" } } } })),
    /v\.onnx \(genai_config\.json model\.vision\.filename\) is missing/,
  );
  assert.throws(() => readOnnxModelFolder(folderWith("tjs-empty", { "config.json": { model_type: "phi3_v" }, "tokenizer.json": {} })), /no onnx\/vision_encoder\*\.onnx/);
  assert.throws(() => readOnnxModelFolder(folderWith("bad-json", { "genai_config.json": "{" })), /not valid JSON/);
});
