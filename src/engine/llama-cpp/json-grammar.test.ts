import { test, after } from "node:test";
import assert from "node:assert/strict";
import { getLlama } from "node-llama-cpp";
import { createJsonGrammar, tightenNumberRules } from "./json-grammar.ts";

const llamaPromise = getLlama({ gpu: false, build: "never" });
after(async () => (await llamaPromise).dispose());

test("integers lose the exponent and other exponents are capped at two digits", async () => {
  const llama = await llamaPromise;
  const schema = await createJsonGrammar(llama, { type: "json_schema", schema: { type: "object", properties: { i: { type: "integer" }, f: { type: "number" } }, required: ["i", "f"] } });
  const integerRule = schema.grammar.split("\n").find((l) => l.startsWith("integer-number-rule"));
  assert.equal(integerRule, 'integer-number-rule ::= "-"? ("0" | [1-9] [0-9]{0,15})');
  assert.match(schema.grammar, /fractional-number-rule ::= .*\[eE\] \[-\+\]\? \[1-9\] \[0-9\]\?/);
  const json = await createJsonGrammar(llama, { type: "json" });
  assert.match(json.grammar, /^number ::= .*\(\[eE\] \[-\+\]\? \[1-9\] \[0-9\]\?\)\? ws$/m);
});

test("an unexpected rule shape fails loudly instead of silently leaving the loose rule", () => {
  assert.throws(() => tightenNumberRules('integer-number-rule ::= [0-9]+ ("e" [0-9]+)?'), /unexpected JSON number rule shape/);
});
