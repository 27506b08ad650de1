import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { Tokenizer } from "@huggingface/tokenizers";
import { PHI3V_IMAGE_TOKEN_ID, phi3Merges, phi3vAddedTokens, phi3vTokenizerConfig, phi3vTokenizerJson } from "./hf-tokenizer.ts";

const config = phi3vTokenizerConfig({ modelMaxLength: 131072 });
const ours = new Tokenizer(phi3vTokenizerJson(), config);

/**
 * Folder holding Microsoft's Phi-3-vision tokenizer.json and tokenizer_config.json (e.g. ORT
 * GenAI's test/models/phi3-v); the comparisons skip when it is not given.
 */
const REFERENCE_DIR = process.env.PHISERVE_PHI3V_REFERENCE_DIR ?? "";
const hasReference = REFERENCE_DIR !== "" && existsSync(join(REFERENCE_DIR, "tokenizer.json"));
const skipReference = !hasReference && "set PHISERVE_PHI3V_REFERENCE_DIR to a folder with Phi-3-vision's tokenizer.json";
const readReference = (name: string): Record<string, unknown> => JSON.parse(readFileSync(join(REFERENCE_DIR, name), "utf8")) as Record<string, unknown>;

const QUESTION = "Which peculiar conclusion about LLMs and SLMs can be extracted from the following chart?";
// Ids from the reference Phi-3-vision tokenizer (Azure's Phi-3-vision example question).
const QUESTION_IDS = [8449, 18036, 15997, 1048, 365, 26369, 29879, 322, 317, 26369, 29879, 508, 367, 23892, 515, 278, 1494, 8727, 29973];

test("encodes the Azure sample question to the reference ids, with BOS by default", () => {
  assert.deepEqual(ours.encode(QUESTION).ids, [1, ...QUESTION_IDS]);
  assert.deepEqual(ours.encode(QUESTION, { add_special_tokens: false }).ids, QUESTION_IDS);
  assert.deepEqual(ours.encode(QUESTION, { add_special_tokens: false }).tokens.slice(4, 7), ["▁L", "LM", "s"]);
});

test("a rendered single-image prompt: markers are single ids, <|image|> and <|assistant|> eat the newline", () => {
  const prompt = `<|user|>\n<|image|>\n${QUESTION}<|end|>\n<|assistant|>\n`;
  const { ids } = ours.encode(prompt);
  assert.deepEqual(ids, [1, 32010, 29871, 13, PHI3V_IMAGE_TOKEN_ID, ...QUESTION_IDS, 32007, 29871, 13, 32001]);
  // 27 text ids + 2353 image rows (num_crops 16, 1900×1069) = Azure's 2380 prompt tokens.
  assert.equal(ids.length - 1 + 2353, 2380);
  assert.equal(ours.decode(ids), `<s><|user|> \n<|image|> ${QUESTION}<|end|> \n<|assistant|>`);
});

test("byte fallback and decoding round-trip text the vocabulary lacks", () => {
  const text = "naïve café 🦙 — 東京 tab\there";
  const { ids, tokens } = ours.encode(text, { add_special_tokens: false });
  assert.ok(tokens.includes("<0xF0>"), "the llama emoji falls back to bytes");
  assert.equal(ours.decode(ids), text);
});

test("merges are the scores' order: 61249, best first, whitespace-only pieces last", () => {
  const merges = phi3Merges();
  assert.equal(merges.length, 61249);
  assert.deepEqual(merges.slice(0, 3), ["▁ t", "e r", "i n"]);
  assert.match(merges.at(-1)!, /^▁+ ▁+$/);
  assert.equal(new Set(merges).size, merges.length);
});

test("added tokens: 0-2 and 32000-32044 with Phi-3-vision's flags", () => {
  const added = phi3vAddedTokens();
  assert.equal(added.length, 3 + 45);
  const byContent = new Map(added.map((t) => [t.content, t]));
  assert.equal(byContent.get("<|image|>")?.id, 32044);
  assert.equal(byContent.get("<|placeholder39|>")?.id, 32043);
  assert.equal(byContent.get("<|placeholder7|>")?.id, 32011);
  for (const name of ["<|assistant|>", "<|image|>", "<|placeholder1|>", "</s>"]) assert.equal(byContent.get(name)?.rstrip, true, name);
  for (const name of ["<|end|>", "<|user|>", "<|system|>", "<|endoftext|>", "<s>"]) assert.equal(byContent.get(name)?.rstrip, false, name);
  assert.equal(byContent.get("</s>")?.special, false);
});

test("tokenizer.json equals the reference file (vocab, merges in order, added tokens, pipeline)", { skip: skipReference }, () => {
  const reference = readReference("tokenizer.json");
  const built = phi3vTokenizerJson();
  const refModel = reference.model as { vocab: Record<string, number>; merges: string[] };
  const builtModel = built.model as typeof refModel;
  assert.deepEqual(builtModel.vocab, refModel.vocab);
  assert.equal(builtModel.merges.length, refModel.merges.length);
  const firstDifference = builtModel.merges.findIndex((m, i) => m !== refModel.merges[i]);
  assert.equal(firstDifference, -1, `merge ${firstDifference}: ${builtModel.merges[firstDifference]} vs ${refModel.merges[firstDifference]}`);
  assert.deepEqual(built.added_tokens, reference.added_tokens);
  assert.equal(JSON.stringify(built), JSON.stringify(reference), "byte-identical JSON (key order included)");
});

test("encodes a varied corpus exactly as the reference tokenizer", { skip: skipReference }, () => {
  const reference = new Tokenizer(readReference("tokenizer.json"), readReference("tokenizer_config.json"));
  const corpus = [
    QUESTION,
    "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHi!<|end|>\n<|assistant|>\n",
    "  leading spaces, trailing  \n\n\ttabs and\r\nCRLF",
    "Numbers 1234567890 3.14159 -42 1e-9 0x1F",
    "naïve café résumé Ünïcödé — “quotes” ‘single’ … 東京 北京 서울 Привет мир 🦙🔥👍🏽",
    "code: function f(x) { return x ** 2; } // comment\n<div class=\"a\">&amp;</div>",
    "<|image_1|>\nDescribe <|image|> this.<|placeholder3|> </s> <s> <unk>",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbb",
    "",
    " ",
    "\u0000\u0001 control \u007f chars",
  ];
  for (const text of corpus) {
    for (const addSpecial of [true, false]) {
      const options = { add_special_tokens: addSpecial };
      assert.deepEqual(ours.encode(text, options).ids, reference.encode(text, options).ids, JSON.stringify(text));
    }
    const ids = reference.encode(text).ids;
    assert.equal(ours.decode(ids), reference.decode(ids), JSON.stringify(text));
  }
});

test("tokenizer_config.json matches the reference except the Python processor's auto_map/class", { skip: skipReference }, () => {
  const { auto_map: _autoMap, processor_class: _processorClass, ...reference } = readReference("tokenizer_config.json");
  assert.deepEqual(JSON.parse(JSON.stringify(config)), reference);
});
