import { test } from "node:test";
import assert from "node:assert/strict";
import type { EngineEvent, GenerationRequest } from "../engine.ts";
import { Cancellation } from "../../lib/cancellation.ts";
import { FakeEngine } from "./fake-engine.ts";

const request = (maxTokens: number): GenerationRequest => ({ prompt: "hi", maxTokens, temperature: 0, topP: 1, presencePenalty: 0, frequencyPenalty: 0 });

async function drain(events: AsyncIterable<EngineEvent>, stopAfterTokens = Infinity): Promise<number> {
  let tokens = 0;
  for await (const event of events) {
    if (event.type === "token") tokens += event.tokenCount;
    if (tokens >= stopAfterTokens) break;
  }
  return tokens;
}

test("stats().generatedTokens counts the tokens yielded, not the requests", async () => {
  const engine = new FakeEngine({ tokens: ["a", "b", "c"], yieldBetweenTokens: false });
  await engine.load();
  assert.equal(await drain(engine.generate(request(10), new Cancellation())), 3);
  assert.equal(await drain(engine.generate(request(2), new Cancellation())), 2, "cut by maxTokens");
  assert.equal(await drain(engine.generate(request(10), new Cancellation()), 1), 1, "the consumer stopped after one");
  assert.equal(engine.stats().generatedTokens, 6);
});

test("modelInfo().addBosToken is false unless the option sets it", () => {
  assert.equal(new FakeEngine({ tokens: [] }).modelInfo().addBosToken, false);
  assert.equal(new FakeEngine({ tokens: [], addBosToken: true }).modelInfo().addBosToken, true);
});
