/** Completion filtering in windows (through ChatGeneration on the scripted engine): nothing blocked is ever released. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeEngine } from "../engine/fake/fake-engine.ts";
import { CHAT_TEMPLATES } from "../catalog/chat-templates.ts";
import { Cancellation } from "../lib/cancellation.ts";
import type { TextClassifier } from "../safety/classifier.ts";
import { ContentFilter } from "../safety/content-filter.ts";
import { AZURE_DEFAULT_POLICY } from "../safety/content-policy.ts";
import { ChatGeneration, type GenerationSink } from "./chat-generation.ts";
import { toChatCommand } from "./chat-command.ts";
import type { ServedModel } from "./served-model.ts";

const capabilities = { supportsVision: false, toolMode: "none", supportsJsonOutput: true, maxChoices: 4 } as const;
const model: ServedModel = { deploymentName: "d", azureName: "M", chatTemplate: CHAT_TEMPLATES["phi3.5-mini"], supportsSystemRole: true, capabilities };

/** Flags violence 6 in any text containing "bomb"; records every text it was shown. */
function bombDetector(seen: string[]): TextClassifier {
  return {
    name: "scripted",
    async classify(text) {
      seen.push(text);
      return { severities: { violence: text.includes("bomb") ? 6 : 0 } };
    },
  };
}

async function run(tokens: string[], windowChars: number, n = 1) {
  const engine = new FakeEngine({ tokens, sequences: 4 });
  await engine.load();
  const generation = new ChatGeneration({ engine, model });
  const prepared = await generation.prepare(toChatCommand({ messages: [{ role: "user", content: "hi" }], max_tokens: 50 }, { n }, capabilities));
  const seen: string[] = [];
  const filter = new ContentFilter({ ...AZURE_DEFAULT_POLICY, streamWindowChars: windowChars }, [bombDetector(seen)]);
  const texts: string[][] = Array.from({ length: n }, () => []);
  const ends: { reason: string; results: unknown }[] = [];
  const sink: GenerationSink = {
    text: (i, text) => void texts[i]!.push(text),
    toolCalls: () => undefined,
    end: (i, reason, _usage, results) => void (ends[i] = { reason, results }),
  };
  let completionTokens = 0;
  await generation.run(prepared, new Cancellation(), sink, (u) => (completionTokens = u.completionTokens), { filter, windowChars });
  return { texts, ends, seen, completionTokens, engine };
}

test("clean text is released in windows of at least the window size, then the annotation comes with the end", async () => {
  const { texts, ends, seen } = await run(["Hello ", "there, ", "how ", "are ", "you?"], 10);
  assert.deepEqual(texts[0], ["Hello there, ", "how are you?"]);
  assert.equal(ends[0]?.reason, "stop");
  assert.deepEqual((ends[0]?.results as Record<string, unknown>).violence, { filtered: false, severity: "safe" });
  // The second window is judged with the end of the first as context.
  assert.equal(seen[1], "lo there, how are you?");
});

test("a blocked window is never released: the choice ends with content_filter, generation stops", async () => {
  const tokens = ["Here ", "is ", "how ", "to ", "make ", "a ", "bomb ", "at ", "home ", "today ", "now"];
  const { texts, ends, completionTokens } = await run(tokens, 8);
  const released = texts[0]!.join("");
  assert.ok(!released.includes("bomb"), released);
  assert.ok("Here is how to make a ".startsWith(released), released);
  assert.equal(ends[0]?.reason, "content_filter");
  assert.deepEqual((ends[0]?.results as Record<string, unknown>).violence, { filtered: true, severity: "high" });
  assert.ok(completionTokens < tokens.length, `generation went on to ${completionTokens} tokens`);
});

test("a phrase split across windows is still caught (context overlap)", async () => {
  const { texts, ends } = await run(["xxxxxxxx bo", "mb yyyyyyyy"], 8);
  assert.equal(ends[0]?.reason, "content_filter");
  assert.ok(!texts[0]!.join("").includes("mb"));
});

test("the end of a short completion is vetted too", async () => {
  const { texts, ends } = await run(["bomb"], 1000);
  assert.deepEqual(texts[0], []);
  assert.equal(ends[0]?.reason, "content_filter");
});
