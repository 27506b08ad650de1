/**
 * An engine whose generations run on OpenAI-compatible upstreams (vLLM, SGLang, TGI, llama-server,
 * Ollama's /v1, another phiserve): phiserve stays the Azure front door (validation, the system-role
 * rule, quotas, metering, content safety) and forwards the planned chat turns (docs/REMOTE.md).
 *
 * - The prompt is counted here, with the catalog model's tokenizer (remote-tokenizer.ts); the
 *   upstream's `usage` is what is billed (the `done` event carries its prompt tokens, and a last
 *   token event makes the completion count equal its `completion_tokens`).
 * - An attempt that fails before its first token reached the caller (refused, reset, 5xx, no byte
 *   within `firstByteTimeoutMs`, a stream that ends before any token) is retried on another replica;
 *   once a token was yielded, a failure ends the generation with an error (docs/REMOTE.md "Retries").
 * - Aborting `signal`, or the caller leaving the loop, aborts the upstream fetch at once: the
 *   upstream sees its client go and frees the sequence.
 */
import type { Logger } from "pino";
import type { Engine, EngineCapacity, EngineEvent, EngineModelInfo, EngineStats, GenerationRequest, OutputConstraint, PromptText, TokenCount } from "../engine.ts";
import type { CancelSignal } from "../../lib/cancellation.ts";
import { AppError } from "../../errors/app-error.ts";
import { UpstreamPool, type PoolOptions, type Replica, type ReplicaSettings } from "./upstream-pool.ts";
import { readFrames, toUpstreamBody } from "./upstream-chat.ts";
import type { PromptCounter } from "./remote-tokenizer.ts";

export interface RemoteEngineOptions extends PoolOptions {
  replicas: readonly ReplicaSettings[];
  /** The model name sent upstream; undefined: the first id the replica's `/models` lists, else `fallbackModel`. */
  model: string | undefined;
  fallbackModel: string;
  /** Requests the deployment runs at once (admission slots). */
  sequences: number;
  contextLength: number;
  /** No byte from the upstream for this long (before the first token, or between two) fails the attempt. */
  firstByteTimeoutMs: number;
  /** Replicas tried per request, at most. */
  maxAttempts: number;
  counter: PromptCounter;
  logger: Logger;
}

/** Statuses that say the request itself is wrong: answered as such, never retried. */
const REQUEST_FAULTS = new Set([400, 413, 422]);
/** Local prompt counts kept for the comparison with the upstream's usage. */
const COUNT_CACHE_ENTRIES = 64;
/** Seconds a client is told to wait when no replica answers. */
const RETRY_AFTER_SECONDS = 2;

/** An attempt's failure before its first token: another replica may take the request. */
class RetryableFailure extends Error {
  constructor(message: string, readonly countsAgainstReplica = true) {
    super(message);
  }
}

export class RemoteEngine implements Engine {
  private readonly pool: UpstreamPool;
  private ready = false;
  /** Recent prompts' local counts, to compare with what the upstream bills. */
  private readonly counts = new Map<string, number>();
  private readonly totals: EngineStats = { promptTokensEvaluated: 0, promptTokensReused: 0, generatedTokens: 0, decodeBatches: 0, decodeBatchTokens: 0, decodePaddingRows: 0 };

  constructor(private readonly options: RemoteEngineOptions) {
    this.pool = new UpstreamPool(options.replicas, options, options.logger);
  }

  capacity(): EngineCapacity {
    return { sequences: this.options.sequences, memoryBytes: 0 };
  }

  stats(): EngineStats {
    return { ...this.totals };
  }

  /** The replicas' state (for metrics and tests). */
  poolStats() {
    return this.pool.stats();
  }

  /** One round of health checks; ready whatever they say (a request still tries every replica). */
  async load(): Promise<void> {
    await this.pool.start();
    this.ready = true;
  }

  isReady(): boolean {
    return this.ready;
  }

  modelInfo(): EngineModelInfo {
    const { counter } = this.options;
    // The catalog templates render their BOS themselves where the model wants one: nothing is prepended.
    return { contextLength: this.options.contextLength, bosToken: counter.bosToken, eosToken: counter.eosToken, addBosToken: false, vocabSize: counter.vocabSize };
  }

  async countTokens(prompt: PromptText, limitTokens: number): Promise<TokenCount> {
    const count = this.options.counter.count(prompt, limitTokens);
    if (count.exact) {
      this.counts.set(prompt.prompt, count.tokens);
      if (this.counts.size > COUNT_CACHE_ENTRIES) this.counts.delete(this.counts.keys().next().value!);
    }
    return count;
  }

  /** The upstream enforces the constraint (`response_format`); nothing is compiled here. */
  async prepareConstraint(_constraint: OutputConstraint): Promise<void> {}

  async *generate(request: GenerationRequest, signal: CancelSignal): AsyncIterable<EngineEvent> {
    if (signal.aborted) return;
    if (request.images && request.images.length > 0) throw new AppError("PARAMETER_NOT_SUPPORTED", "This deployment's upstream takes no images.", { param: "messages" });
    if (request.constrainAfter || request.suppressTokens) throw new AppError("PARAMETER_NOT_SUPPORTED", "Native tool calling is not forwarded to an upstream; use tool emulation.", { param: "tools" });
    if (!request.messages) throw new AppError("INTERNAL", "A remote engine needs the request's chat turns.");
    const tried = new Set<Replica>();
    let last = "";
    for (let attempt = 0; attempt < this.options.maxAttempts; attempt++) {
      const replica = this.pool.pick(tried);
      if (!replica) break;
      tried.add(replica);
      const run = this.attempt(replica, request, signal);
      try {
        // Delegate until the first token: a failure before it is retried elsewhere.
        yield* run;
        return;
      } catch (error) {
        if (!(error instanceof RetryableFailure) || signal.aborted) throw error;
        last = error.message;
        if (error.countsAgainstReplica) this.pool.failed(replica, error.message);
        this.options.logger.warn({ event: "upstream.retry", upstream: replica.describe(), attempt: attempt + 1, reason: error.message }, "upstream attempt failed before its first byte; retrying");
      }
    }
    if (signal.aborted) return;
    throw new AppError("ENGINE_UNAVAILABLE", "No upstream replica could take the request; retry shortly.", { retryAfterSeconds: RETRY_AFTER_SECONDS, cause: new Error(last) });
  }

  /** One attempt on one replica. Throws RetryableFailure only while nothing has been yielded. */
  private async *attempt(replica: Replica, request: GenerationRequest, signal: CancelSignal): AsyncGenerator<EngineEvent> {
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    let delivered = false;
    let timedOut = false;
    let watchdog: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        timedOut = true;
        controller.abort(new Error("upstream timeout"));
      }, this.options.firstByteTimeoutMs);
    };
    const fail = (message: string, countsAgainstReplica = true): Error => {
      if (!delivered) return new RetryableFailure(message, countsAgainstReplica);
      this.pool.failed(replica, message);
      return new AppError("ENGINE_UNAVAILABLE", "The upstream failed during the generation.", { cause: new Error(message) });
    };
    replica.outstanding += 1;
    arm();
    try {
      let response: Response;
      try {
        response = await fetch(`${replica.url}/chat/completions`, {
          method: "POST",
          headers: replica.headers,
          body: JSON.stringify(toUpstreamBody(request, this.options.model ?? replica.models[0] ?? this.options.fallbackModel)),
          signal: controller.signal,
        });
      } catch (error) {
        if (signal.aborted) return;
        throw fail(timedOut ? `no answer within ${this.options.firstByteTimeoutMs} ms` : describeError(error));
      }
      if (!response.ok) {
        const text = await response.text().catch(() => "");
        if (REQUEST_FAULTS.has(response.status)) {
          this.pool.succeeded(replica);
          throw new AppError("INVALID_REQUEST", `The upstream refused the request: ${upstreamMessage(text) ?? `status ${response.status}`}`);
        }
        // 429: the replica is busy, not broken.
        throw fail(`status ${response.status}`, response.status !== 429);
      }
      if (!response.body) throw fail("an empty answer");
      let finishReason: "stop" | "length" | undefined;
      let usage: { promptTokens: number; completionTokens: number } | undefined;
      let counted = 0;
      let ended = false;
      try {
        for await (const frame of readFrames(response.body, arm)) {
          if (frame.type === "text") {
            if (!delivered) this.pool.succeeded(replica);
            delivered = true;
            counted += frame.tokenCount;
            yield { type: "token", text: frame.text, tokenCount: frame.tokenCount, ...(frame.logprobs ? { logprobs: frame.logprobs } : {}) };
          } else if (frame.type === "finish") finishReason = frame.finishReason;
          else if (frame.type === "usage") usage = frame;
          else if (frame.type === "error") throw fail(`the upstream's error frame: ${frame.message}`);
          else {
            ended = true;
            break;
          }
        }
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof RetryableFailure || error instanceof AppError) throw error;
        throw fail(timedOut ? `no byte for ${this.options.firstByteTimeoutMs} ms` : describeError(error));
      }
      if (signal.aborted) return;
      // A stream must end with a finish reason: one that just stops was cut (a reset proxy, a crashed upstream).
      if (finishReason === undefined) throw fail(ended ? "the stream ended without a finish reason" : "the stream was cut");
      this.pool.succeeded(replica);
      // The upstream's count is what is billed: a last empty token event makes up any tokens its frames did not show.
      if (usage && usage.completionTokens > counted) yield { type: "token", text: "", tokenCount: usage.completionTokens - counted };
      this.totals.generatedTokens += Math.max(counted, usage?.completionTokens ?? 0);
      this.totals.promptTokensEvaluated += usage?.promptTokens ?? 0;
      const local = this.counts.get(request.prompt);
      if (usage && local !== undefined && local !== usage.promptTokens) {
        // The upstream rendered or tokenized the prompt otherwise (another template, a BOS): its count is billed.
        this.options.logger.warn({ event: "upstream.prompt_tokens_differ", upstream: replica.describe(), counted: local, billed: usage.promptTokens }, "the upstream counts the prompt differently");
      }
      yield { type: "done", finishReason, ...(usage ? { promptTokens: usage.promptTokens } : {}) };
    } finally {
      clearTimeout(watchdog);
      signal.removeEventListener("abort", onAbort);
      replica.outstanding -= 1;
      // Whatever ended the attempt (done, a stop string, the client gone), the upstream stops generating now.
      controller.abort(new Error("attempt over"));
    }
  }

  async close(): Promise<void> {
    this.pool.close();
    this.ready = false;
  }
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause as { code?: unknown; message?: unknown } | undefined;
  if (cause && typeof cause.code === "string") return `${error.message} (${cause.code})`;
  return cause && typeof cause.message === "string" ? `${error.message}: ${cause.message}` : error.message;
}

/** The `error.message` of an OpenAI-style error body, if it has one. */
function upstreamMessage(text: string): string | undefined {
  try {
    const message = (JSON.parse(text) as { error?: { message?: unknown }; message?: unknown }).error?.message;
    return typeof message === "string" ? message : undefined;
  } catch {
    return undefined;
  }
}
