/**
 * Classifiers that ask a model served by phiserve's own engine (docs/SAFETY.md "Guard model and judge").
 * They never see a deployment or an engine: the composition root injects a {@link GuardCompletion}
 * that runs one chat generation on the guard's deployment. This file holds that contract and the
 * Llama Guard 3 classifier; the judge (the served Phi model with a rubric) is in judge-classifier.ts.
 */
import type { Classification, TextClassifier, TextRole } from "./classifier.ts";
import {
  DEFAULT_HAZARD_MAP,
  LLAMA_GUARD_CHAT_TEMPLATE,
  guardConversation,
  parseLlamaGuardOutput,
  renderLlamaGuardTask,
  verdictSeverities,
  type HazardMapping,
  type LlamaGuardHazard,
  type LlamaGuardVariant,
} from "./llama-guard.ts";

/** One chat message sent to the guard model. */
export interface GuardMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** One generation a classifier asks for. */
export interface GuardCompletionRequest {
  messages: GuardMessage[];
  /** Cap on generated tokens. */
  maxTokens: number;
  /** Constrained decoding: the answer must match this schema (the supported subset: docs/DECODING.md). */
  jsonSchema?: Record<string, unknown>;
  /**
   * Render `messages` with this Jinja chat template instead of the model's own (the Llama Guard
   * classifier sends {@link LLAMA_GUARD_CHAT_TEMPLATE}; the judge sends none).
   */
  chatTemplate?: string;
}

/**
 * Runs one chat generation on the guard's deployment and resolves with the generated text. The
 * implementation generates greedily (temperature 0), renders `messages` with `chatTemplate` or else the
 * model's own template (system messages translated as for any request to that model, message contents
 * literal text), and enforces `jsonSchema` by constrained decoding. Aborting `signal` stops generation
 * and rejects.
 */
export type GuardCompletion = (request: GuardCompletionRequest, signal: AbortSignal) => Promise<string>;

export interface LlamaGuardClassifierOptions {
  /** Which Llama Guard 3 model the deployment serves: "8b" (S1–S14, default) or "1b" (S1–S13). */
  variant?: LlamaGuardVariant;
  /** Overrides of {@link DEFAULT_HAZARD_MAP}: a hazard's Azure category and severity, or null to ignore it. */
  hazardMap?: Partial<Record<LlamaGuardHazard, HazardMapping | null>>;
  /** Cap on the answer's tokens; default 64 (`unsafe` and all fourteen codes take under 50). */
  maxTokens?: number;
  /** The classifier's name in annotations, metrics and logs; default "llama-guard". */
  name?: string;
}

/** Default token cap of a Llama Guard answer. */
export const LLAMA_GUARD_MAX_TOKENS = 64;

/**
 * Llama Guard 3 as a {@link TextClassifier}: a prompt is assessed as the User message, a completion as
 * the Agent message after a neutral user turn. Every category gets a severity (0 when not flagged);
 * jailbreak is not assessed. An answer that is not a verdict rejects (the policy then annotates
 * `content_filter_error`). Whitespace-only text is safe without asking the model.
 */
export function createLlamaGuardClassifier(complete: GuardCompletion, options: LlamaGuardClassifierOptions = {}): TextClassifier {
  const variant = options.variant ?? "8b";
  const hazardMap = { ...DEFAULT_HAZARD_MAP, ...options.hazardMap };
  for (const [hazard, mapping] of Object.entries(hazardMap)) {
    if (mapping && !isSeverity(mapping.severity)) throw new Error(`llama-guard: the severity of ${hazard} must be an integer from 0 to 7`);
  }
  const maxTokens = options.maxTokens ?? LLAMA_GUARD_MAX_TOKENS;
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new Error("llama-guard: maxTokens must be a positive integer");
  return {
    name: options.name ?? "llama-guard",
    async classify(text: string, role: TextRole, signal: AbortSignal): Promise<Classification> {
      signal.throwIfAborted();
      if (text.trim() === "") return { severities: verdictSeverities({ safe: true }) };
      const task = renderLlamaGuardTask(guardConversation(text, role), variant);
      const output = await complete({ messages: [{ role: "user", content: task }], maxTokens, chatTemplate: LLAMA_GUARD_CHAT_TEMPLATE }, signal);
      return { severities: verdictSeverities(parseLlamaGuardOutput(output), hazardMap) };
    },
  };
}

/** An Azure severity: an integer from 0 to 7. */
export function isSeverity(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 7;
}
