import { test } from "node:test";
import assert from "node:assert/strict";
import { StepBudget } from "./step-budget.ts";

test("without a budget prompts take whatever room the batch has", () => {
  const budget = new StepBudget(undefined);
  assert.equal(budget.promptTokens(4), Infinity);
});

test("with nothing decoding, prompts are not limited (no stream waits)", () => {
  const budget = new StepBudget(50);
  assert.equal(budget.promptTokens(0), Infinity);
});

test("the budget becomes a token count from the measured step and prompt-token costs", () => {
  const budget = new StepBudget(100);
  assert.equal(budget.promptTokens(2), 32, "before any measurement: a small first chunk");
  budget.observe(2, 0, 20); // a decode step: 20 ms
  budget.observe(0, 100, 200); // a prompt step: 2 ms per token
  assert.equal(budget.promptTokens(2), 40, "(100 − 20) / 2");
  budget.observe(2, 40, 20 + 40 * 2);
  assert.equal(budget.promptTokens(2), 40, "a mixed step that matches the model keeps it");
});

test("chunks of different sizes separate a chunk's fixed cost from its cost per token", () => {
  const budget = new StepBudget(2000);
  budget.observe(1, 0, 200); // a decode step
  budget.observe(0, 98, 256 + 98 * 38.5); // a whole prompt
  assert.equal(budget.promptTokens(1), Math.floor((2000 - 200) / ((256 + 98 * 38.5) / 98)), "one size seen: the average per token");
  budget.observe(1, 25, 200 + 256 + 25 * 38.5); // a mixed step: the decode step, then the chunk's pass
  const { promptMarginalMs, promptFixedMs, promptTokenMs } = budget.estimates();
  assert.ok(Math.abs(promptMarginalMs - 38.5) < 1e-6 && Math.abs(promptFixedMs - 256) < 1e-6, `${promptMarginalMs} ${promptFixedMs}`);
  assert.ok(promptTokenMs > 38.5, "the average per token carries the fixed part");
  assert.equal(budget.promptTokens(1), Math.floor((2000 - 200 - 256) / 38.5), "the fixed part counted once, the rest per token");
});

test("a budget smaller than a decode step still lets prompts progress", () => {
  const budget = new StepBudget(10);
  budget.observe(4, 0, 30);
  budget.observe(0, 10, 50);
  assert.equal(budget.promptTokens(4), 8);
});

test("estimates follow changes gradually", () => {
  const budget = new StepBudget(1000);
  budget.observe(1, 0, 10);
  budget.observe(1, 0, 20);
  assert.equal(budget.estimates().decodeMs, 12);
});
