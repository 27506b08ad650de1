/** The policy's decisions and Azure's annotation shapes, and the filter's handling of failing or slow classifiers. */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Classification, TextClassifier } from "./classifier.ts";
import { ContentFilter } from "./content-filter.ts";
import { AZURE_DEFAULT_POLICY, judge, mergeResults, reaches, type ContentSafetyPolicy } from "./content-policy.ts";

/** A classifier that answers from a table: text containing a key gets that finding. */
function scripted(table: Record<string, Classification>, name = "scripted"): TextClassifier {
  return {
    name,
    async classify(text) {
      const hits = Object.entries(table).filter(([key]) => text.includes(key)).map(([, c]) => c);
      return hits[0] ?? { severities: {} };
    },
  };
}

const policy = (over: Partial<ContentSafetyPolicy> = {}): ContentSafetyPolicy => ({ ...AZURE_DEFAULT_POLICY, ...over });

test("thresholds follow Azure's buckets: low 2–3, medium 4–5, high 6–7; off never filters", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map((s) => reaches(s, "medium")), [false, false, false, false, true, true, true, true]);
  assert.deepEqual([1, 2, 6].map((s) => reaches(s, "low")), [false, true, true]);
  assert.deepEqual([5, 6].map((s) => reaches(s, "high")), [false, true]);
  assert.equal(reaches(7, "off"), false);
});

test("judge: Azure's annotation for every category, jailbreak only on prompts, filtered only in filter mode", () => {
  const found: Classification = { severities: { violence: 4, hate: 2 }, jailbreak: true };
  const prompt = judge(policy(), "prompt", found);
  assert.equal(prompt.filtered, true);
  assert.deepEqual(prompt.reasons, ["violence", "jailbreak"]);
  assert.deepEqual(prompt.results, {
    hate: { filtered: false, severity: "low" },
    sexual: { filtered: false, severity: "safe" },
    violence: { filtered: true, severity: "medium" },
    self_harm: { filtered: false, severity: "safe" },
    jailbreak: { filtered: true, detected: true },
  });
  const completion = judge(policy(), "completion", found);
  assert.equal("jailbreak" in completion.results, false);
  const annotated = judge(policy({ mode: "annotate" }), "prompt", found);
  assert.equal(annotated.filtered, false);
  assert.deepEqual(annotated.results.violence, { filtered: false, severity: "medium" });
  assert.deepEqual(annotated.reasons, ["violence", "jailbreak"]);
  const lenient = judge(policy({ prompt: { hate: "high", sexual: "high", violence: "high", self_harm: "high" }, jailbreak: false }), "prompt", found);
  assert.equal(lenient.filtered, false);
});

test("judge: profanity and custom blocklists appear when enabled, with Azure's details", () => {
  const found: Classification = { severities: {}, profanity: true, blocklistHits: [{ blocklistId: "pizza" }, { blocklistId: "unlisted" }] };
  const verdict = judge(policy({ profanity: true, blocklistIds: ["pizza", "pasta"] }), "completion", found);
  assert.equal(verdict.filtered, true);
  assert.deepEqual(verdict.results.profanity, { filtered: true, detected: true });
  assert.deepEqual(verdict.results.custom_blocklists, { filtered: true, details: [{ filtered: true, id: "pizza" }] });
  assert.deepEqual(verdict.reasons, ["profanity", "blocklist:pizza"]);
});

test("mergeResults keeps the highest severity and any finding across windows", () => {
  const a = judge(policy(), "completion", { severities: { violence: 2 } }).results;
  const b = judge(policy(), "completion", { severities: { violence: 6, hate: 1 } }).results;
  const merged = mergeResults(a, b);
  assert.deepEqual(merged.violence, { filtered: true, severity: "high" });
  assert.deepEqual(merged.hate, { filtered: false, severity: "safe" });
});

test("the filter combines classifiers (max per category)", async () => {
  const filter = new ContentFilter(policy(), [scripted({ knife: { severities: { violence: 2 } } }), scripted({ knife: { severities: { violence: 5 } } })]);
  const verdict = await filter.check("a knife", "prompt");
  assert.equal(verdict.filtered, true);
  assert.deepEqual(verdict.results.violence, { filtered: true, severity: "medium" });
});

test("a failing or slow classifier: the text goes on annotated content_filter_error, and the failure is reported", async () => {
  const errors: string[] = [];
  const failing: TextClassifier = { name: "broken", classify: async () => Promise.reject(new Error("down")) };
  const hanging: TextClassifier = { name: "slow", classify: () => new Promise(() => undefined) };
  const filter = new ContentFilter(policy({ timeoutMs: 50 }), [failing, hanging, scripted({})], { onClassifierError: (name) => errors.push(name) });
  const verdict = await filter.check("hello", "completion");
  assert.equal(verdict.filtered, false);
  assert.deepEqual(verdict.results, { error: { code: "content_filter_error", message: "The contents are not filtered" } });
  assert.deepEqual(errors.sort(), ["broken", "slow"]);
  // What a working classifier finds still blocks.
  const blocking = new ContentFilter(policy({ timeoutMs: 50 }), [failing, scripted({ bomb: { severities: { violence: 6 } } })]);
  assert.equal((await blocking.check("a bomb", "prompt")).filtered, true);
});

test("withMode relaxes the same classifiers; off and no classifiers mean inactive", () => {
  const filter = new ContentFilter(policy({ annotations: true }), [scripted({})]);
  assert.equal(filter.active, true);
  assert.equal(filter.withMode("annotate").policy.mode, "annotate");
  assert.equal(filter.withMode("off").active, false);
  assert.equal(new ContentFilter(policy(), []).active, false);
  assert.match(filter.describe(), /^mode=filter; prompt=hate:medium,sexual:medium,violence:medium,self_harm:medium; .*classifiers=scripted$/);
});
