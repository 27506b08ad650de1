/**
 * OpenAI `logit_bias` and suppressed tokens as one node-llama-cpp TokenBias, applied by both
 * decoding paths (the native sampler reads it, before temperature and truncation).
 */
import { TokenBias, type LlamaModel, type Token } from "node-llama-cpp";
import type { GenerationRequest } from "../engine.ts";
import { tokenBiasEntries } from "./node-llama-cpp-internals.ts";
import { singleToken } from "./token-text.ts";

/** The request's `logit_bias` plus a ban on each suppressed token, as a TokenBias; undefined when empty. */
export function requestTokenBias(model: LlamaModel, request: GenerationRequest): TokenBias | undefined {
  return createTokenBias(model, withSuppressed(model, request));
}

/**
 * OpenAI `logit_bias` as a node-llama-cpp TokenBias: the bias is added to the logit; −100 bans.
 * TokenBias.set() skips end-of-generation tokens, but OpenAI lets clients bias those too, so
 * their entries go into the same map directly.
 */
export function createTokenBias(model: LlamaModel, logitBias: ReadonlyMap<number, number> | undefined): TokenBias | undefined {
  if (!logitBias || logitBias.size === 0) return undefined;
  const bias = new TokenBias(model.tokenizer);
  const entries = tokenBiasEntries(bias);
  for (const [id, value] of logitBias) entries.set(id as Token, value <= -100 ? -Infinity : value);
  return bias;
}

/** `logit_bias` plus a ban on every suppressed token (a text that is not exactly one token is ignored). */
export function withSuppressed(model: LlamaModel, request: GenerationRequest): ReadonlyMap<number, number> | undefined {
  if (!request.suppressTokens?.length) return request.logitBias;
  const bias = new Map(request.logitBias);
  for (const text of request.suppressTokens) {
    const token = singleToken(model, text);
    if (token !== undefined) bias.set(token, -100);
  }
  return bias;
}
