/**
 * The Phi "extra parameters" Azure passes through (`logprobs`, `top_logprobs`, `logit_bias`,
 * `n`), validated into typed options. They arrive only with `extra-parameters: pass-through`
 * (or on the OpenAI route), so they are checked here rather than by the body schema.
 */
import { AppError, type ValidationDetail } from "../errors/app-error.ts";
import { toLaxBoolean, toLaxInteger, toLaxNumber } from "../protocol/lax-coercion.ts";

export interface DecodingOptions {
  /** Number of choices (1 … maxChoices). */
  n: number;
  /** Top alternatives per token when logprobs are on; undefined when off. */
  topLogprobs: number | undefined;
  /** token id → bias in [−100, 100]; ids are checked against the vocabulary later. */
  logitBias: Map<number, number>;
}

export const MAX_TOP_LOGPROBS = 20;

export function toDecodingOptions(extra: Record<string, unknown>, maxChoices: number): DecodingOptions {
  const errors: ValidationDetail[] = [];
  const n = intIn(extra.n, "n", 1, maxChoices, 1, errors);
  // The body schema's lax mode, applied by hand: these keys have no schema (docs/ERRORS.md "Validation").
  const logprobs = extra.logprobs === undefined || extra.logprobs === null ? false : toLaxBoolean(extra.logprobs);
  if (logprobs === undefined) errors.push({ type: "bool_parsing", loc: ["body", "logprobs"], msg: "Input should be a valid boolean, unable to interpret input", input: extra.logprobs });
  const top = intIn(extra.top_logprobs, "top_logprobs", 0, MAX_TOP_LOGPROBS, 0, errors);
  if (extra.top_logprobs !== undefined && extra.top_logprobs !== null && logprobs !== true) {
    errors.push({ type: "value_error", loc: ["body", "top_logprobs"], msg: "top_logprobs requires logprobs to be true", input: extra.top_logprobs });
  }
  const logitBias = toLogitBias(extra.logit_bias, errors);
  if (errors.length > 0) {
    const first = errors[0]!;
    throw new AppError("INVALID_REQUEST", `Invalid input (${first.loc.join(".")}: ${first.msg})`, { param: String(first.loc[1]), details: errors });
  }
  return { n, topLogprobs: logprobs === true ? top : undefined, logitBias };
}

function intIn(value: unknown, name: string, min: number, max: number, fallback: number, errors: ValidationDetail[]): number {
  if (value === undefined || value === null) return fallback;
  const n = toLaxInteger(value);
  if (n === undefined) {
    errors.push(typeof value === "string"
      ? { type: "int_parsing", loc: ["body", name], msg: "Input should be a valid integer, unable to parse string as an integer", input: value }
      : { type: "int_type", loc: ["body", name], msg: "Input should be a valid integer", input: value });
  } else if (n < min || n > max) {
    errors.push({ type: n < min ? "greater_than_equal" : "less_than_equal", loc: ["body", name], msg: `Input should be ${n < min ? `greater than or equal to ${min}` : `less than or equal to ${max}`}`, input: value, ctx: n < min ? { ge: min } : { le: max } });
  } else return n;
  return fallback;
}

function toLogitBias(value: unknown, errors: ValidationDetail[]): Map<number, number> {
  const bias = new Map<number, number>();
  if (value === undefined || value === null) return bias;
  if (typeof value !== "object" || Array.isArray(value)) {
    errors.push({ type: "dict_type", loc: ["body", "logit_bias"], msg: "Input should be a valid dictionary", input: value });
    return bias;
  }
  for (const [key, raw] of Object.entries(value as Record<string, unknown>)) {
    const loc = ["body", "logit_bias", key];
    const amount = toLaxNumber(raw);
    if (!/^\d+$/.test(key)) errors.push({ type: "int_parsing", loc, msg: `Token id '${key}' should be a non-negative integer`, input: key });
    else if (amount === undefined || amount < -100 || amount > 100) {
      errors.push({ type: "value_error", loc, msg: "Bias should be a number between -100 and 100", input: raw });
    } else bias.set(Number(key), amount);
  }
  return bias;
}

/** Rejects token ids outside the model's vocabulary (422 naming the id). */
export function checkLogitBiasIds(bias: ReadonlyMap<number, number>, vocabSize: number): void {
  const bad = [...bias.keys()].filter((id) => id >= vocabSize);
  if (bad.length === 0) return;
  throw new AppError("INVALID_REQUEST", `logit_bias: token id ${bad[0]} is outside the vocabulary (0–${vocabSize - 1}).`, {
    param: "logit_bias",
    details: bad.map((id) => ({ type: "value_error", loc: ["body", "logit_bias", String(id)], msg: `Token id ${id} is outside the vocabulary of ${vocabSize} tokens`, input: id })),
  });
}
