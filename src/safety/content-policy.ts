/**
 * A deployment's content-safety policy, with Azure's semantics (docs/SAFETY.md "Policy"): a severity
 * threshold per harm category for prompts and for completions, jailbreak and profanity filtering,
 * custom blocklists, and a mode (`filter`, `annotate` only, or `off`). This module turns a combined
 * {@link Classification} into the decision and the annotation Azure returns; it runs no classifier.
 */
import { HARM_CATEGORIES, severityLevel, type Classification, type HarmCategory, type SeverityLevel, type TextRole } from "./classifier.ts";

/** Filter from this level up; `off` never filters (the category is still annotated). */
export type Threshold = "low" | "medium" | "high" | "off";
export const THRESHOLDS: readonly Threshold[] = ["low", "medium", "high", "off"];

export type SafetyMode = "filter" | "annotate" | "off";

export interface ContentSafetyPolicy {
  /** `filter` (Azure's default), `annotate`: findings reported, nothing blocked; `off`: no classifier runs. */
  mode: SafetyMode;
  /** Put the annotations in responses (`prompt_filter_results`, per-choice `content_filter_results`). */
  annotations: boolean;
  prompt: Readonly<Record<HarmCategory, Threshold>>;
  completion: Readonly<Record<HarmCategory, Threshold>>;
  /** Filter prompts a classifier finds to be a jailbreak attempt (Azure's Prompt Shields, on by default). */
  jailbreak: boolean;
  /** Filter text with profanity from the built-in list (Azure: off by default). */
  profanity: boolean;
  /** Ids of the custom blocklists in force (their items live with the blocklist classifier). */
  blocklistIds: readonly string[];
  /** A classifier slower than this is given up on: the request goes on, annotated `content_filter_error`. */
  timeoutMs: number;
  /** Streamed completions are released in windows of at least this many characters, each vetted first. */
  streamWindowChars: number;
}

const MEDIUM: Readonly<Record<HarmCategory, Threshold>> = Object.freeze({ hate: "medium", sexual: "medium", violence: "medium", self_harm: "medium" });

/** Azure's default policy for serverless models: medium and above on prompts and completions, jailbreak on prompts. */
export const AZURE_DEFAULT_POLICY: Readonly<ContentSafetyPolicy> = Object.freeze({
  mode: "filter",
  annotations: false,
  prompt: MEDIUM,
  completion: MEDIUM,
  jailbreak: true,
  profanity: false,
  blocklistIds: [],
  timeoutMs: 2000,
  streamWindowChars: 128,
});

const RANK: Record<SeverityLevel, number> = { safe: 0, low: 1, medium: 2, high: 3 };
const THRESHOLD_RANK: Record<Exclude<Threshold, "off">, number> = { low: 1, medium: 2, high: 3 };

/** Whether a severity (0–7) reaches a threshold. */
export function reaches(severity: number, threshold: Threshold): boolean {
  return threshold !== "off" && RANK[severityLevel(severity)] >= THRESHOLD_RANK[threshold];
}

/** Azure's annotation object (`content_filter_results`), wire-shaped. */
export type WireFilterResults = Record<string, unknown>;

/** The annotation Azure writes when the filter could not run (docs/SAFETY.md "Annotations"). */
export const FILTER_ERROR_RESULTS: Readonly<WireFilterResults> = Object.freeze({
  error: { code: "content_filter_error", message: "The contents are not filtered" },
});

export interface Verdict {
  /** The text must be blocked (never true in annotate mode). */
  filtered: boolean;
  /** What blocked it, for logs and metrics: category names, `jailbreak`, `profanity`, `blocklist:<id>`. */
  reasons: string[];
  /** Azure's annotation for this text. */
  results: WireFilterResults;
}

/** The decision and annotation for one text under `policy`. */
export function judge(policy: ContentSafetyPolicy, role: TextRole, found: Classification): Verdict {
  const block = policy.mode === "filter";
  const thresholds = role === "prompt" ? policy.prompt : policy.completion;
  const results: WireFilterResults = {};
  const reasons: string[] = [];
  for (const category of HARM_CATEGORIES) {
    const severity = found.severities[category] ?? 0;
    const hit = reaches(severity, thresholds[category]);
    if (hit) reasons.push(category);
    results[category] = { filtered: block && hit, severity: severityLevel(severity) };
  }
  if (role === "prompt" && policy.jailbreak) {
    const detected = found.jailbreak === true;
    if (detected) reasons.push("jailbreak");
    results.jailbreak = { filtered: block && detected, detected };
  }
  if (policy.profanity) {
    const detected = found.profanity === true;
    if (detected) reasons.push("profanity");
    results.profanity = { filtered: block && detected, detected };
  }
  if (policy.blocklistIds.length > 0) {
    const hits = (found.blocklistHits ?? []).filter((h) => policy.blocklistIds.includes(h.blocklistId));
    for (const h of hits) reasons.push(`blocklist:${h.blocklistId}`);
    results.custom_blocklists = { filtered: block && hits.length > 0, details: hits.map((h) => ({ filtered: block, id: h.blocklistId })) };
  }
  return { filtered: block && reasons.length > 0, reasons, results };
}

/** Several windows' annotations of one choice as one: the highest severity and any positive finding. */
export function mergeResults(a: WireFilterResults | undefined, b: WireFilterResults): WireFilterResults {
  if (!a) return b;
  if ("error" in a || "error" in b) return "error" in a ? a : b;
  const out: WireFilterResults = { ...a };
  for (const [key, value] of Object.entries(b)) {
    const prev = a[key] as Record<string, unknown> | undefined;
    const next = value as Record<string, unknown>;
    if (!prev) out[key] = next;
    else if (typeof next.severity === "string") {
      const pick = RANK[next.severity as SeverityLevel] > RANK[prev.severity as SeverityLevel] ? next : prev;
      out[key] = { filtered: Boolean(prev.filtered) || Boolean(next.filtered), severity: pick.severity };
    } else if (Array.isArray(next.details)) {
      const details = [...(prev.details as unknown[]), ...next.details].filter((d, i, all) => all.findIndex((x) => (x as { id: string }).id === (d as { id: string }).id) === i);
      out[key] = { filtered: Boolean(prev.filtered) || Boolean(next.filtered), details };
    } else out[key] = { filtered: Boolean(prev.filtered) || Boolean(next.filtered), detected: Boolean(prev.detected) || Boolean(next.detected) };
  }
  return out;
}

/** The policy's short description for the `x-ms-content-policy`-style response header (docs/SAFETY.md "What runs by default"). */
export function describePolicy(policy: ContentSafetyPolicy, classifierNames: readonly string[]): string {
  if (policy.mode === "off") return "off";
  const levels = (r: Readonly<Record<HarmCategory, Threshold>>) => HARM_CATEGORIES.map((c) => `${c}:${r[c]}`).join(",");
  return `mode=${policy.mode}; prompt=${levels(policy.prompt)}; completion=${levels(policy.completion)}; jailbreak=${policy.jailbreak}; classifiers=${classifierNames.join(",") || "none"}`;
}
