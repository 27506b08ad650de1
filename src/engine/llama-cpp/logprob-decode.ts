/**
 * The logprobs decoding path, one evaluation step per token through `LogitSteps`: the raw
 * distribution (after logit_bias and penalties, before temperature and truncation) is read every
 * step by native samplers, and the token is drawn natively as on the fast path
 * (docs/DECODING.md "What the logprobs are", docs/ENGINE-NOTES.md "Logprobs from native samplers").
 */
import type { LlamaContextSequence, Token } from "node-llama-cpp";
import type { EngineEvent, TokenLogprob } from "../engine.ts";
import { toLogprob } from "../sampling.ts";
import type { DecodeSlot } from "./decode-gate.ts";
import { repeatPenalty, type DecodeTools, type Run } from "./decode-steps.ts";
import { LogitSteps, NO_TOP_K, type NativeSample, type SampleLogits } from "./node-llama-cpp-internals.ts";

/** Sampler settings that leave the distribution untouched (no truncation, no temperature): a greedy chain. */
const RAW_DISTRIBUTION = { temperature: 0, topK: 0, topP: 1, minP: 0 } as const;

/**
 * Each step evaluates the last token once and reads its logits with up to three native samplers
 * (`LogitSteps`), none of which returns the whole vocabulary:
 * - the pick: greedy on the raw distribution, or above temperature 0 the fast path's own chain
 *   (temperature, top-p, seeded draw), so a seed gives the same tokens with and without logprobs;
 * - the raw distribution (after logit_bias and penalties, before temperature and truncation): the
 *   pick's logit, the highest logit and Σ exp(logit − max), from a greedy chain, whose pick is the
 *   highest; at temperature 0 the pick sampler is that chain already, and its pick is the highest, so
 *   its call returns only the sum (logprob −log Σ), without the whole-vocabulary list the addon builds
 *   to filter logits from;
 * - the top entries, when more than the pick is asked for: a chain that only keeps the `top`
 *   highest logits (llama.cpp's top-k: a partial sort), at temperature 1, which leaves logits as they are.
 */
export async function* generateWithLogprobs(tools: DecodeTools, sequence: LlamaContextSequence, run: Run): AsyncGenerator<EngineEvent> {
  const { request, decoder } = run;
  const top = request.topLogprobs ?? 0;
  const greedy = request.temperature <= 0;
  const steps = new LogitSteps(sequence);
  const common = () => ({ seed: run.seed, ...(run.tokenBias ? { tokenBias: run.tokenBias } : {}), ...repeatPenalty(request, decoder) });
  const pick = steps.sampler();
  const raw = greedy ? pick : steps.sampler();
  // At temperature 0 the pick is the highest entry: a list of one needs no sampler of its own.
  const topSampler = top > 1 || (top === 1 && !greedy) ? steps.sampler() : undefined;
  const read = async (sample: SampleLogits): Promise<StepLogits | undefined> => {
    const topList = topSampler
      ? (topSampler.configure({ temperature: 1, topK: top, topP: 1, minP: 0, ...common() }), sample(topSampler, { tokens: [], top }))
      : undefined;
    if (greedy) {
      pick.configure({ ...RAW_DISTRIBUTION, ...common() });
      // No logits filter: the addon would build a whole-vocabulary list to find the pick's logit in, which is the
      // maximum anyway. Its logprob is −log Σ exp(logit − max); the top list, when there is one, gives the maximum.
      const picked = await sample(pick, { totalLogitWeight: true });
      const topSample = await topList;
      // Without a top list only the pick is reported, and only its distance to the maximum counts: 0 stands for both.
      const max = topSample?.logits[0]?.[1] ?? 0;
      return picked.token === undefined ? undefined : { token: picked.token, pickLogit: max, stats: { max, logSum: Math.log(picked.totalLogitWeight ?? 1) }, topSample };
    }
    pick.configure({ temperature: request.temperature, topP: request.topP, topK: NO_TOP_K, minP: 0, ...common() });
    const picked = await sample(pick, {});
    if (picked.token === undefined) return undefined;
    const token = picked.token;
    raw.configure({ ...RAW_DISTRIBUTION, ...common() });
    const rawSample = await sample(raw, { tokens: [token], includeSelected: true, totalLogitWeight: true });
    return { token, pickLogit: rawSample.logits.find(([t]) => t === token)?.[1] ?? -Infinity, stats: rawStats(rawSample), topSample: await topList };
  };
  // Joins the decode gate after the prompt step, as the fast path does (see DecodeSteps.tokens()).
  let slot: DecodeSlot | undefined;
  // One step ahead of the consumer, as the fast path (DecodeSteps.tokens(), docs/ENGINE-NOTES.md "Decoding one token
  // ahead"): the step that samples token n + 1 is asked for before token n is handed on. Its samplers read the
  // penalty list after its native decode, by when token n is in the decoder.
  let ahead: ReturnType<typeof nextStep> | undefined;
  const nextStep = (input: Token[]) => tools.steps.step(slot, () => steps.step(input, read));
  try {
    ahead = nextStep(run.inputTokens);
    while (!run.signal.aborted) {
      const result = await ahead;
      ahead = undefined;
      slot ??= tools.steps.join(run.sequenceId);
      if (!result || tools.model.isEogToken(result.token) || tools.stopTokenIds.has(result.token)) break;
      const { token, pickLogit, stats, topSample } = result;
      const logprob = toLogprob(pickLogit, stats);
      const topLogprobs = top === 0 ? [] : (topSample?.logits ?? [[token, pickLogit] as [Token, number]]).slice(0, top);
      const entry: TokenLogprob = {
        ...tools.describer.describe(token, logprob),
        topLogprobs: topLogprobs.filter(([, l]) => l !== -Infinity).map(([t, l]) => tools.describer.describe(t, toLogprob(l, stats))),
      };
      const isLast = decoder.tokens.length + 1 >= request.maxTokens;
      const text = decoder.push(token, isLast);
      if (!isLast) {
        ahead = nextStep([token]);
        // Awaited in `finally` when the consumer stops first; never an unhandled rejection meanwhile.
        ahead.catch(() => undefined);
      }
      yield { type: "token", text, tokenCount: 1, logprobs: [entry] };
      if (isLast) {
        yield { type: "done", finishReason: "length" };
        return;
      }
    }
  } finally {
    // A step asked for ahead runs to its end (it uses the samplers) before they are freed; its token is discarded.
    if (ahead) await ahead.catch(() => undefined);
    tools.steps.end(slot, run.sequenceId);
    for (const sampler of new Set([pick, raw, topSampler])) sampler?.dispose();
  }
  if (!run.signal.aborted) yield { type: "done", finishReason: "stop" };
}

/** What one step's samplers read: the token, its logit in the raw distribution, the raw distribution's normaliser, the top list. */
interface StepLogits {
  token: Token;
  pickLogit: number;
  stats: { max: number; logSum: number };
  topSample: NativeSample | undefined;
}

/** The raw distribution's maximum (the greedy chain's pick, the highest logit returned) and log Σ exp(logit − max). */
function rawStats(sample: NativeSample): { max: number; logSum: number } {
  let max = -Infinity;
  for (const [, logit] of sample.logits) if (logit > max) max = logit;
  return { max, logSum: Math.log(sample.totalLogitWeight ?? 1) };
}
