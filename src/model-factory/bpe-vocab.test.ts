/**
 * Tests for the byte-level BPE vocabularies rebuilt from js-tiktoken's rank tables
 * (docs/MODELS.md "Vocabularies in GGUF form"). Model loading is tested in model-factory.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { buildByteLevelBpe, byteLevelBpe, byteToUnicode, tiktokenRanks } from "./bpe-vocab.ts";
import { TokenType } from "./phi3-vocab.ts";
import { PHI4_MINI_TOKEN_IDS, PHI4_MINI_VOCAB_SIZE, PHI4_TOKEN_IDS, PHI4_VOCAB_SIZE, phi4MiniVocab, phi4Vocab } from "./phi4-vocab.ts";

test("GPT-2 byte-to-unicode map", () => {
  const u = byteToUnicode();
  assert.equal(u.length, 256);
  assert.equal(new Set(u).size, 256);
  assert.deepEqual([u[0x20], u[0x0a], u[0x09], u[0x41], u[0x00], u[0xad], u[0xff]], ["Ġ", "Ċ", "ĉ", "A", "Ā", "Ń", "ÿ"]);
});

test("merges replay tiktoken BPE: the last merge of each multi-byte rank, in rank order", () => {
  const bytes = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));
  const singleBytes = Array.from({ length: 256 }, (_, b) => new Uint8Array([b]));
  // Ranks 256+: "ab", "bc", "abc", " a". "abc" replays as a·b → ab (lower rank than bc), then ab·c.
  const bpe = buildByteLevelBpe([...singleBytes, ...["ab", "bc", "abc", " a"].map(bytes)]);
  assert.deepEqual(bpe.merges, ["a b", "b c", "ab c", "Ġ a"]);
  assert.deepEqual(bpe.tokens.slice(256), ["ab", "bc", "abc", "Ġa"]);
  assert.equal(bpe.tokens[0x20], "Ġ");
  // Every single byte must be a token (byte-level BPE can encode anything).
  assert.throws(() => buildByteLevelBpe([bytes("a")]), /lacks the single byte/);
});

test("cl100k: 100256 ranks, 100000 merges starting as in phi-4 GGUFs", (t) => {
  const started = performance.now();
  const bpe = byteLevelBpe("cl100k_base");
  t.diagnostic(`cl100k tokens+merges built in ${Math.round(performance.now() - started)} ms (rank table load included)`);
  assert.equal(tiktokenRanks("cl100k_base").pieces.length, 100256);
  assert.equal(bpe.merges.length, 100000);
  assert.deepEqual(bpe.merges.slice(0, 4), ["Ġ Ġ", "ĠĠ ĠĠ", "i n", "Ġ t"]);
  assert.deepEqual([bpe.tokens[9906], bpe.tokens[1917], bpe.tokens[198], bpe.tokens[220]], ["Hello", "Ġworld", "Ċ", "Ġ"]);
  assert.equal(byteLevelBpe("cl100k_base"), bpe, "memoized");
});

test("o200k: 199998 ranks, 199742 merges starting as in Phi-4-mini GGUFs", (t) => {
  const started = performance.now();
  const bpe = byteLevelBpe("o200k_base");
  t.diagnostic(`o200k tokens+merges built in ${Math.round(performance.now() - started)} ms (rank table load included)`);
  assert.equal(tiktokenRanks("o200k_base").pieces.length, 199998);
  assert.equal(bpe.merges.length, 199742);
  assert.deepEqual(bpe.merges.slice(0, 4), ["Ġ Ġ", "ĠĠ ĠĠ", "i n", "e r"]);
  assert.deepEqual([bpe.tokens[13225], bpe.tokens[2375]], ["Hello", "Ġworld"]);
  // Byte tokens 0x80–0xFF alone are not whole UTF-8; ASCII and "Ġworld" are.
  assert.equal(bpe.wholeUtf8[2375], 1);
  const highByte = bpe.tokens.indexOf(byteToUnicode()[0xe6]);
  assert.ok(highByte >= 0 && bpe.wholeUtf8[highByte] === 0);
});

function typeHistogram(types: Int32Array): Record<number, number> {
  const histogram: Record<number, number> = {};
  for (const type of types) histogram[type] = (histogram[type] ?? 0) + 1;
  return histogram;
}

test("phi-4 vocabulary: 100352 ids, torchtune's added tokens", () => {
  const { tokens, types, merges } = phi4Vocab();
  assert.equal(tokens.length, PHI4_VOCAB_SIZE);
  assert.equal(merges.length, 100000);
  const at = (id: number) => [tokens[id], types[id]];
  assert.deepEqual(at(PHI4_TOKEN_IDS.dummy0), ["<|dummy_0|>", TokenType.CONTROL]);
  assert.deepEqual(at(PHI4_TOKEN_IDS.endOfText), ["<|endoftext|>", TokenType.CONTROL]);
  assert.deepEqual(at(PHI4_TOKEN_IDS.fimPrefix), ["<|fim_prefix|>", TokenType.CONTROL]);
  assert.deepEqual(at(PHI4_TOKEN_IDS.fimSuffix), ["<|fim_suffix|>", TokenType.CONTROL]);
  assert.deepEqual(at(100261), ["<|dummy_1|>", TokenType.CONTROL]);
  assert.deepEqual(at(PHI4_TOKEN_IDS.imStart), ["<|im_start|>", TokenType.CONTROL]);
  assert.deepEqual(at(PHI4_TOKEN_IDS.imEnd), ["<|im_end|>", TokenType.CONTROL]);
  assert.deepEqual(at(PHI4_TOKEN_IDS.imSep), ["<|im_sep|>", TokenType.CONTROL]);
  assert.deepEqual(at(100267), ["<|dummy_4|>", TokenType.CONTROL]);
  assert.deepEqual(at(PHI4_TOKEN_IDS.endOfPrompt), ["<|endofprompt|>", TokenType.CONTROL]);
  assert.deepEqual(at(100277), ["<|dummy_13|>", TokenType.CONTROL]);
  assert.deepEqual(at(PHI4_TOKEN_IDS.pad), ["<|dummy_85|>", TokenType.CONTROL]);
  assert.deepEqual(at(100351), ["<|dummy_87|>", TokenType.CONTROL]);
  assert.deepEqual(typeHistogram(types), { [TokenType.NORMAL]: 100256, [TokenType.CONTROL]: 96 });
  assert.equal(new Set(tokens).size, tokens.length, "token strings are unique");
});

test("Phi-4-mini vocabulary: 200064 ids, the HF config's added tokens, tool-call tokens CONTROL", () => {
  const { tokens, types, merges } = phi4MiniVocab();
  assert.equal(tokens.length, PHI4_MINI_VOCAB_SIZE);
  assert.equal(merges.length, 199742);
  const ids = PHI4_MINI_TOKEN_IDS;
  const at = (id: number) => [tokens[id], types[id]];
  assert.deepEqual(at(199998), ["[PAD199998]", TokenType.UNUSED]);
  assert.deepEqual(at(ids.endOfText), ["<|endoftext|>", TokenType.CONTROL]);
  assert.deepEqual(at(200000), ["[PAD200000]", TokenType.UNUSED]);
  assert.deepEqual(at(200017), ["[PAD200017]", TokenType.UNUSED]);
  assert.deepEqual(at(ids.endOfPrompt), ["<|endofprompt|>", TokenType.CONTROL]);
  assert.deepEqual(at(ids.assistant), ["<|assistant|>", TokenType.CONTROL]);
  assert.deepEqual(at(ids.end), ["<|end|>", TokenType.CONTROL]);
  assert.deepEqual(at(ids.user), ["<|user|>", TokenType.CONTROL]);
  assert.deepEqual(at(ids.system), ["<|system|>", TokenType.CONTROL]);
  assert.deepEqual(at(ids.tool), ["<|tool|>", TokenType.USER_DEFINED]);
  assert.deepEqual(at(ids.toolEnd), ["<|/tool|>", TokenType.USER_DEFINED]);
  assert.deepEqual(at(ids.toolCall), ["<|tool_call|>", TokenType.CONTROL]);
  assert.deepEqual(at(ids.toolCallEnd), ["<|/tool_call|>", TokenType.CONTROL]);
  assert.deepEqual(at(200027), ["[PAD200027]", TokenType.UNUSED]);
  assert.deepEqual(at(200063), ["[PAD200063]", TokenType.UNUSED]);
  assert.deepEqual(typeHistogram(types), {
    [TokenType.NORMAL]: 199998,
    [TokenType.CONTROL]: 8,
    [TokenType.USER_DEFINED]: 2,
    [TokenType.UNUSED]: 1 + 18 + 37,
  });
  assert.equal(new Set(tokens).size, tokens.length, "token strings are unique");
});
