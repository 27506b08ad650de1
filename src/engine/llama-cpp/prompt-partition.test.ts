/** The prompt partition on a made-up vocabulary: where markers are parsed, strips, and the size bound. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { PromptPartitioner, type MarkerToken } from "./prompt-partition.ts";

const marker = (id: number, text: string, extra: Partial<MarkerToken> = {}): MarkerToken => ({ id, text, userDefined: false, lstrip: false, rstrip: false, ...extra });
const END = 1;
const USER = 2;
const ENDOFTEXT = 3;
const TOOL = 4;
const partitioner = new PromptPartitioner({
  markers: [marker(END, "<|end|>"), marker(USER, "<|user|>", { rstrip: true }), marker(ENDOFTEXT, "<|endoftext|>"), marker(TOOL, "<|tool|>", { userDefined: true, lstrip: true })],
  maxTokenBytes: 4,
});

test("template text is parsed for markers, longest first; literal spans keep control-token text as text", () => {
  const prompt = "<|user|>hi <|end|><|endoftext|>";
  assert.deepEqual(partitioner.partition({ prompt }), [USER, "hi ", END, ENDOFTEXT]);
  const content = "a<|end|>\n<|user|>b";
  const framed = `<|user|>${content}<|end|>`;
  assert.deepEqual(partitioner.partition({ prompt: framed, literalSpans: [{ start: 8, end: 8 + content.length }] }), [USER, content, END]);
  assert.deepEqual(partitioner.partition({ prompt: framed, literalSpans: [{ start: 8, end: 8 + content.length }] }, { parseSpecialEverywhere: true }), [USER, "a", END, "\n", USER, "b", END]);
});

test("raw text on both sides of a literal span joins it (one fragment, as llama.cpp tokenizes it)", () => {
  assert.deepEqual(partitioner.partition({ prompt: "x<|user|>ab\ncd<|end|>", literalSpans: [{ start: 9, end: 11 }] }), ["x", USER, "ab\ncd", END]);
});

test("user-defined tokens are matched in message text too, as llama.cpp does without special parsing", () => {
  assert.deepEqual(partitioner.partition({ prompt: "a <|tool|>b", literalSpans: [{ start: 0, end: 11 }] }), ["a", TOOL, "b"]);
});

test("rstrip and lstrip drop the whitespace next to the marker, and fragments left empty", () => {
  assert.deepEqual(partitioner.partition({ prompt: "<|user|>\n \tx" }), [USER, "x"]);
  assert.deepEqual(partitioner.partition({ prompt: "<|user|>\n\n<|end|>" }), [USER, END]);
  assert.deepEqual(partitioner.partition({ prompt: "<|end|>\n\n<|end|>" }), [END, "\n\n", END]);
  assert.deepEqual(partitioner.partition({ prompt: "y \n<|tool|>" }), ["y", TOOL]);
});

test("the size bound: one token per marker, at least one per fragment, and no fragment covers more than the longest token's bytes", () => {
  assert.equal(partitioner.minTokens([USER, "abcdefghi", END, "é"]), 1 + 3 + 1 + 1);
  assert.equal(partitioner.minTokens([]), 0);
});

test("80,000 markers in template text: each its own token, and the newline after each <|end|> a fragment", () => {
  const prompt = "<|user|>\n<|end|>\n".repeat(40_000);
  const fragments = partitioner.partition({ prompt })!;
  assert.equal(fragments.filter((f) => f === END).length, 40_000);
  assert.equal(partitioner.minTokens(fragments), 40_000 * 3);
});

test("with maxMarkers, the partition gives up once it has found more markers than that", () => {
  const prompt = "<|user|>\n<|end|>\n".repeat(40_000);
  assert.equal(partitioner.partition({ prompt }, { maxMarkers: 4095 }), undefined);
  assert.equal(partitioner.partition({ prompt: "<|user|>a<|end|>" }, { maxMarkers: 2 })?.length, 3);
  assert.equal(partitioner.partition({ prompt: "<|user|>a<|end|>" }, { maxMarkers: 1 }), undefined);
});
