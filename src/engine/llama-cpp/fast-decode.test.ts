import { test } from "node:test";
import assert from "node:assert/strict";
import { JsonCloseDetector } from "./fast-decode.ts";

const feed = (pieces: string[]): boolean[] => {
  const detector = new JsonCloseDetector();
  return pieces.map((piece) => detector.push(piece));
};

test("closes on the piece that completes the top-level object, not on an inner brace", () => {
  assert.deepEqual(feed(['{"a": ', '{"b": 1}', ", ", '"c": [1]', "}"]), [false, false, false, false, true]);
});

test("a closing brace inside a string does not close the value", () => {
  assert.deepEqual(feed(['{"a": "x}', '"', "}"]), [false, false, true]);
});

test("top-level arrays close too, and trailing whitespace after the close still counts", () => {
  assert.deepEqual(feed(["[1, ", "2]"]), [false, true]);
  assert.deepEqual(feed(["{}", " \n"]), [true, true]);
});
