import { test } from "node:test";
import assert from "node:assert/strict";
import { findJsonDepthOverflow } from "./json-body.ts";

test("depth counts nested objects and arrays and reports where the limit is first passed", () => {
  assert.equal(findJsonDepthOverflow('{"a":[1,{"b":[]}]}', 4), -1);
  assert.equal(findJsonDepthOverflow('{"a":[1,{"b":[]}]}', 3), 13);
  assert.equal(findJsonDepthOverflow("[[],[],[]]", 2), -1);
  assert.equal(findJsonDepthOverflow("[".repeat(20_000), 128), 128);
});

test("brackets inside strings, escaped quotes and backslashes included, do not count", () => {
  assert.equal(findJsonDepthOverflow(`["${"[{".repeat(100)}"]`, 1), -1);
  // The escaped quote does not end the string; the escaped backslash does not escape its closing quote.
  assert.equal(findJsonDepthOverflow('["\\"[[[", "\\\\", []]', 1), 16);
  assert.equal(findJsonDepthOverflow('["\\\\"]', 1), -1);
  assert.equal(findJsonDepthOverflow('{"k\\"{":"\\u005b["}', 1), -1);
});
