import { test } from "node:test";
import assert from "node:assert/strict";
import { StopSequenceMatcher } from "./stop-sequences.ts";

function run(stops: string[], pieces: string[]): { out: string; stopped: boolean } {
  const matcher = new StopSequenceMatcher(stops);
  let out = "";
  for (const piece of pieces) {
    const { emit, stopped } = matcher.push(piece);
    out += emit;
    if (stopped) return { out, stopped: true };
  }
  return { out: out + matcher.flush(), stopped: false };
}

test("cuts at a stop string inside one piece", () => {
  assert.deepEqual(run(["END"], ["abcENDdef"]), { out: "abc", stopped: true });
});

test("holds back a stop string split across pieces and never emits it", () => {
  const matcher = new StopSequenceMatcher(["\n\nUser:"]);
  assert.deepEqual(matcher.push("Hello\n"), { emit: "Hello", stopped: false });
  assert.deepEqual(matcher.push("\nUs"), { emit: "", stopped: false });
  assert.deepEqual(matcher.push("er: hi"), { emit: "", stopped: true });
});

test("releases held text when the candidate does not complete", () => {
  assert.deepEqual(run(["STOP"], ["ab", "ST", "x"]), { out: "abSTx", stopped: false });
});

test("the earliest of several stop strings wins", () => {
  assert.deepEqual(run(["b", "a"], ["xxab"]), { out: "xx", stopped: true });
});

test("no stop strings passes everything through unchanged", () => {
  assert.deepEqual(run([], ["a", "b"]), { out: "ab", stopped: false });
});

test("JSON mode holds trailing whitespace and drops it at the end, but keeps inner whitespace", () => {
  const matcher = new StopSequenceMatcher([], true);
  assert.deepEqual(matcher.push('{"a": '), { emit: '{"a":', stopped: false });
  assert.deepEqual(matcher.push("1}\n\n"), { emit: " 1}", stopped: false });
  assert.equal(matcher.flush(), "");
});
