import { test, before } from "node:test";
import assert from "node:assert/strict";
import { ensurePhi3vTestModel } from "../../model-factory/phi3v-test-model.ts";
import { readOnnxModelFolder } from "./onnx-model-folder.ts";
import { completeLength, TokenTextStream, TokenVocabulary } from "./onnx-token-text.ts";
import { OnnxTokenizer } from "./onnx-tokenizer.ts";

let tokenizer: OnnxTokenizer;
let vocabulary: TokenVocabulary;

before(async () => {
  const folder = readOnnxModelFolder(await ensurePhi3vTestModel());
  tokenizer = new OnnxTokenizer(folder.tokenizerJson, folder.tokenizerConfig);
  vocabulary = new TokenVocabulary(tokenizer);
});

function stream(ids: readonly number[]): string[] {
  const text = new TokenTextStream(vocabulary);
  return ids.map((id, i) => text.push(id, i === ids.length - 1));
}

test("streamed pieces join to the full tokenizer's decoding (leading space stripped once, byte fallback, multi-byte characters)", () => {
  const texts = ["Hello world", " two leading", "line one\nline two\n\n", "日本語 🙂🚀 Ελληνικά", "tabs\tand\u00a0nbsp", "x  y   z"];
  for (const text of texts) {
    const ids = tokenizer.full.encode(text, { add_special_tokens: false }).ids;
    const pieces = stream(ids);
    assert.equal(pieces.join(""), tokenizer.full.decode(ids), JSON.stringify(text));
    for (const piece of pieces) assert.ok(!piece.includes("\uFFFD"), `no half character in ${JSON.stringify(pieces)}`);
  }
});

test("a character spelled by byte-fallback tokens is held back until its last byte", () => {
  // 🙂 is F0 9F 99 82: four byte tokens.
  const bytes = [0xf0, 0x9f, 0x99, 0x82].map((b) => tokenizer.tokenId(`<0x${b.toString(16).toUpperCase()}>`)!);
  assert.deepEqual(stream([tokenizer.tokenId("▁Hi")!, ...bytes]), ["Hi", "", "", "", "🙂"]);
  // The last token flushes what is pending, as U+FFFD when it is not a character.
  const text = new TokenTextStream(vocabulary);
  assert.equal(text.push(bytes[0]!, false), "");
  assert.equal(text.push(bytes[1]!, true), "\uFFFD");
});

test("special tokens add no streamed text; logprobs describe them by their text", () => {
  const end = tokenizer.tokenId("<|end|>")!;
  // As Hugging Face decodes with skip_special_tokens: the strip applies to the first text that is streamed.
  const ids = [end, tokenizer.tokenId("▁ok")!, tokenizer.tokenId("▁then")!];
  assert.deepEqual(stream(ids), ["", "ok", " then"]);
  assert.equal(tokenizer.full.decode(ids, { skip_special_tokens: true }), "ok then");
  assert.deepEqual(vocabulary.describe(end, -1), { token: "<|end|>", logprob: -1, bytes: [...Buffer.from("<|end|>")] });
  assert.deepEqual(vocabulary.describe(tokenizer.tokenId("▁Hello")!, -0.5), { token: " Hello", logprob: -0.5, bytes: [...Buffer.from(" Hello")] });
  assert.deepEqual(vocabulary.describe(tokenizer.tokenId("<0xF0>")!, -2), { token: "bytes:\\xf0", logprob: -2, bytes: [0xf0] });
});

test("completeLength keeps back only an unfinished trailing UTF-8 sequence", () => {
  const euro = Buffer.from("a€"); // 61 E2 82 AC
  assert.equal(completeLength(euro, 4), 4);
  assert.equal(completeLength(euro, 3), 1);
  assert.equal(completeLength(euro, 2), 1);
  assert.equal(completeLength(Uint8Array.from([0xff]), 1), 1, "an invalid byte is not waited on");
  assert.equal(completeLength(Uint8Array.from([0x80, 0x80]), 2), 2, "stray continuation bytes are not waited on");
});
