/**
 * What every content-safety classifier answers, on Azure AI Content Safety's scale (docs/SAFETY.md
 * "Categories and severities"): a severity 0–7 for each harm category it assesses, and the binary
 * findings it can make (jailbreak, profanity, blocklist hits). Classifiers are composed by taking the
 * highest severity per category; the policy (thresholds, annotate-only) is applied above them.
 */

/** Azure's four harm categories (multi-label). */
export type HarmCategory = "hate" | "sexual" | "violence" | "self_harm";
export const HARM_CATEGORIES: readonly HarmCategory[] = ["hate", "sexual", "violence", "self_harm"];

/** Whether the text is the request's prompt or (part of) a generated completion. */
export type TextRole = "prompt" | "completion";

/** Azure's severity levels in annotations ("safe" is annotated but never filtered). */
export type SeverityLevel = "safe" | "low" | "medium" | "high";

/** One custom blocklist item that matched. */
export interface BlocklistHit {
  /** The blocklist's id (Azure's `custom_blocklists.details[].id`). */
  blocklistId: string;
}

/** One classifier's findings for one text. Absent fields: not assessed by this classifier. */
export interface Classification {
  /** Severity 0–7 per harm category. */
  severities: Partial<Record<HarmCategory, number>>;
  /** A user prompt attack (prompts only). */
  jailbreak?: boolean | undefined;
  /** Profanity from the built-in list. */
  profanity?: boolean | undefined;
  /** Custom blocklist items found. */
  blocklistHits?: readonly BlocklistHit[] | undefined;
}

export interface TextClassifier {
  /** Short name for annotations, metrics and logs (e.g. "blocklist", "onnx", "llama-guard", "azure"). */
  readonly name: string;
  /**
   * Classifies one text. Rejects when the classifier cannot answer (the policy then annotates
   * `content_filter_error` and lets the request go on, as Azure does); `signal` aborts it (timeout).
   */
  classify(text: string, role: TextRole, signal: AbortSignal): Promise<Classification>;
  close?(): Promise<void>;
}

/** Azure Content Safety's trimmed scale: [0,1] safe, [2,3] low, [4,5] medium, [6,7] high. */
export function severityLevel(severity: number): SeverityLevel {
  if (severity >= 6) return "high";
  if (severity >= 4) return "medium";
  if (severity >= 2) return "low";
  return "safe";
}

/** Several classifiers' findings as one: the highest severity per category, any positive flag, every hit. */
export function combineClassifications(results: readonly Classification[]): Classification {
  const severities: Partial<Record<HarmCategory, number>> = {};
  let jailbreak: boolean | undefined;
  let profanity: boolean | undefined;
  const hits: BlocklistHit[] = [];
  for (const r of results) {
    for (const category of HARM_CATEGORIES) {
      const s = r.severities[category];
      if (s !== undefined) severities[category] = Math.max(severities[category] ?? 0, s);
    }
    if (r.jailbreak !== undefined) jailbreak = (jailbreak ?? false) || r.jailbreak;
    if (r.profanity !== undefined) profanity = (profanity ?? false) || r.profanity;
    for (const hit of r.blocklistHits ?? []) if (!hits.some((h) => h.blocklistId === hit.blocklistId)) hits.push(hit);
  }
  return { severities, jailbreak, profanity, blocklistHits: hits };
}
