/**
 * Pure decoding math shared by engines: OpenAI-style logprobs from logits.
 */

/** log-softmax of one logit given the distribution's max and log Σ exp(logit − max). */
export function toLogprob(logit: number, stats: { max: number; logSum: number }): number {
  return logit - stats.max - stats.logSum;
}
