/**
 * The logprobs decoding path, `sequence.controlledEvaluate()` one token at a time: the raw
 * distribution (after logit_bias and penalties, before temperature and truncation) is read every
 * step and, above temperature 0, the token is drawn here with a seeded sampler.
 */
import type { LlamaContextSequence, Token } from "node-llama-cpp";
import type { EngineEvent, TokenLogprob } from "../engine.ts";
import { logSumExp, sampleToken, SeededRandom, toLogprob } from "../sampling.ts";
import type { DecodeSlot } from "./decode-gate.ts";
import { repeatPenalty, type DecodeTools, type Run } from "./decode-steps.ts";

/** Sampler settings that leave the distribution untouched (no truncation, no temperature). */
const RAW_DISTRIBUTION = { temperature: 0, topK: 0, topP: 1, minP: 0 } as const;

export async function* generateWithLogprobs(tools: DecodeTools, sequence: LlamaContextSequence, run: Run): AsyncGenerator<EngineEvent> {
  const { request, decoder } = run;
  const top = request.topLogprobs ?? 0;
  const greedy = request.temperature <= 0;
  const random = new SeededRandom(run.seed);
  let input: Token[] = run.inputTokens;
  // Joins the decode gate after the prompt step, as the fast path does (see DecodeSteps.tokens()).
  let slot: DecodeSlot | undefined;
  try {
    while (!run.signal.aborted) {
      const last = input[input.length - 1]!;
      const results = await tools.steps.step(slot, () => sequence.controlledEvaluate([
        ...input.slice(0, -1),
        [last, { generateNext: {
          token: greedy,
          // Greedy: the native pick plus the top list and the normaliser; sampling needs every logit.
          // A top list makes the addon sort the whole vocabulary; at most one entry is the pick itself.
          logits: greedy ? { filter: { tokens: [], includeSelected: true, ...(top > 1 ? { includeTop: top } : {}) } } : true,
          totalLogitWeight: true,
          options: { ...RAW_DISTRIBUTION, ...(run.tokenBias ? { tokenBias: run.tokenBias } : {}), ...repeatPenalty(request, decoder) },
        } }],
      ]));
      slot ??= tools.steps.join();
      const next = results[results.length - 1]?.next;
      const logits = next?.logits;
      if (!next || !logits || logits.size === 0) break;
      // Straight from the Map: the whole vocabulary comes back at every sampled step, so no copies of it.
      // Greedy: the pick is the highest logit, which is also the first of a top list.
      const stats = greedy ? { max: Math.max(...logits.values()), logSum: Math.log(next.totalLogitWeight ?? 1) } : logSumExp({ [Symbol.iterator]: () => logits.values() });
      const token = greedy ? next.token : (sampleToken(logits.entries(), request.temperature, request.topP, random, logits.size) as Token);
      if (token === null || token === undefined || tools.model.isEogToken(token) || tools.stopTokenIds.has(token)) break;
      const logprob = toLogprob(logits.get(token) ?? -Infinity, stats);
      const entry: TokenLogprob = {
        ...tools.describer.describe(token, logprob),
        topLogprobs: topEntries(logits, top).map(([t, l]) => tools.describer.describe(t, toLogprob(l, stats))),
      };
      const isLast = decoder.tokens.length + 1 >= request.maxTokens;
      yield { type: "token", text: decoder.push(token, isLast), tokenCount: 1, logprobs: [entry] };
      if (isLast) {
        yield { type: "done", finishReason: "length" };
        return;
      }
      input = [token];
    }
  } finally {
    slot?.leave();
  }
  if (!run.signal.aborted) yield { type: "done", finishReason: "stop" };
}

/** The `count` highest finite logits (the map comes sorted from the addon, but order is not relied on). */
export function topEntries(logits: ReadonlyMap<Token, number>, count: number): [Token, number][] {
  if (count === 0) return [];
  const best: [Token, number][] = [];
  for (const [token, logit] of logits) {
    if (logit === -Infinity) continue;
    if (best.length < count) best.push([token, logit]);
    else if (logit > best[best.length - 1]![1]) best[best.length - 1] = [token, logit];
    else continue;
    best.sort((a, b) => b[1] - a[1]);
  }
  return best;
}
