/**
 * The chat-completions use case: one object owns a request's whole life, with no transport in
 * it (the route only adapts HTTP to it, as vLLM's router does over `create_chat_completion`):
 *
 *   resolve deployment → authorize → map the command → load → prepare (template, exact prompt
 *   tokens, context check) → reserve quota → admit → run → release, reconcile quota → meter
 *
 * Every check that can fail runs before `create` resolves, so the caller can still answer with a
 * plain error; what fails later ends a stream with an error. Time to first token, queue wait,
 * usage (metrics, the log line and the usage store) are measured here and nowhere else.
 */
import type { Logger } from "pino";
import type { ChatCompletionChunk, ChatCompletionResponse, ChatCompletionsRequest } from "../protocol/chat-completions.schema.ts";
import type { Principal } from "../auth/principal.ts";
import type { Limit, Quota, RateLimitState, Reservation } from "../quota/quota.ts";
import { toRateLimitHeaders } from "../quota/rate-limit-headers.ts";
import type { Admission, AdmitRequest } from "../scheduler/admission-scheduler.ts";
import type { Metrics } from "../observability/metrics.ts";
import { AppError } from "../errors/app-error.ts";
import { statusOf } from "../errors/http-mapping.ts";
import { createCompletionId } from "../lib/ids.ts";
import { AsyncChannel } from "../lib/async-channel.ts";
import { toAbortSignal, type CancelSignal } from "../lib/cancellation.ts";
import type { ContentFilter } from "../safety/content-filter.ts";
import type { WireFilterResults } from "../safety/content-policy.ts";
import { toChatCommand, type ChatCommand } from "./chat-command.ts";
import type { ChatGeneration, GenerationSink, PreparedChat, UsageRecord } from "./chat-generation.ts";
import type { ServedModel } from "./served-model.ts";
import { RequestLifetime } from "./request-lifetime.ts";
import { StreamChunks, toCompletionResponse, type CompletedChoice, type ResponseMeta } from "./to-protocol.ts";
import { toStreamUsage, type ChatApi } from "./stream-usage.ts";
import type { UsageMeter } from "./usage-meter.ts";
import type { Span, Tracer } from "@opentelemetry/api";
import { endChatSpan, failChatSpan, noteFirstToken, setChatSpanRequest, startChatSpan } from "../observability/tracing.ts";

/** The logging the use case does on a request's logger (a pino logger or fastify's request.log). */
export type RequestLog = Pick<Logger, "debug" | "info" | "warn" | "error">;

/** A validated chat request, as the transport received it. */
export interface ChatCompletionsCommand {
  body: ChatCompletionsRequest;
  /** Parameters `extra-parameters: pass-through` hands on to the model. */
  passThrough: Readonly<Record<string, unknown>>;
  /** The `azureml-model-deployment` header, when sent. */
  deploymentName: string | undefined;
  /** The API the route serves (default `azure`): `openai` on /v1 (model names, streamed usage). */
  api?: ChatApi | undefined;
}

/** Who asks, and when the request must end. Times are `performance.now()` milliseconds. */
export interface ChatRequestContext {
  principal: Principal;
  /** Aborted when the client goes away. */
  signal: CancelSignal;
  arrivedAt: number;
  /** Give up (504 before the first byte, an error chunk after it) at this time; undefined = never. */
  deadlineAt: number | undefined;
  requestId: string;
  /** The request's logger (carries its id). */
  log: RequestLog;
  /** Called once the use case has logged the request's `request.completed` line (with its usage). */
  onLogged?: (() => void) | undefined;
}

/** What `create` resolves with: a finished response, or chunks to stream as they come. */
export type ChatCompletionsResult = (
  | { stream: false; response: ChatCompletionResponse }
  /** Iterating drives nothing: generation runs on its own and waits when the reader falls behind. Leaving the loop early stops it. */
  | { stream: true; chunks: AsyncIterable<ChatCompletionChunk> }
) & {
  rateLimit: RateLimitState;
  /** The content-safety policy the request ran under, for the `x-ms-content-policy`-style header (docs/SAFETY.md). */
  contentPolicy: string;
};

/** What the use case needs of a deployment. */
export interface ChatDeployment {
  readonly name: string;
  readonly model: ServedModel;
  readonly chat: ChatGeneration;
  readonly scheduler: { admit(request: AdmitRequest): Promise<Admission>; stats(): { queued: number } };
  readonly limit: Limit;
  /** Throws FORBIDDEN unless `principal` may use it. */
  authorize(principal: Principal): void;
  /** The content filter for this caller: the deployment's policy, or the caller's key override. */
  contentFilterFor(principal: Principal): ContentFilter;
}

export interface ChatDeployments<D extends ChatDeployment> {
  /** The deployment a request names (header, then body `model`), or the default; MODEL_NOT_FOUND otherwise. */
  resolve(header: string | undefined, bodyModel: string | undefined, api: ChatApi): D;
  /** Loads the deployment's engine if needed (within the memory budget). */
  ensureLoaded(deployment: D): Promise<void>;
}

export interface ChatCompletionsDeps<D extends ChatDeployment> {
  deployments: ChatDeployments<D>;
  quota: Quota;
  usage: UsageMeter;
  metrics: Metrics;
  /** Aborted when the drain timeout passes: every request still running ends. */
  shutdownSignal: CancelSignal;
  /** GenAI spans (docs/ADMIN-API.md "Traces"); undefined = no tracing, and no cost. */
  tracer?: Tracer | undefined;
}

/** Chunks a stream may hold unread before generation waits for the reader. */
const STREAM_HIGH_WATER_MARK = 4;

/** One admitted request: what its run and its accounting share. */
interface Exchange {
  deployment: ChatDeployment;
  context: ChatRequestContext;
  prepared: PreparedChat;
  meta: ResponseMeta;
  lifetime: RequestLifetime;
  admission: Admission;
  reservation: Reservation;
  usage: UsageRecord | undefined;
  sawOutput: boolean;
  filter: ContentFilter;
  /** The prompt's annotation, when the response carries annotations. */
  promptFilterResults: WireFilterResults | undefined;
  /** When the first output came (`performance.now()`), once it did. */
  firstOutputAt: number | undefined;
  /** The request's span while tracing; from here on `settle` ends it. */
  span: Span | undefined;
}

/** A request's span, and whether `settle` owns it yet (from admission on). */
interface Trace {
  span: Span | undefined;
  settled: boolean;
}

/** Azure's message for a blocked prompt (docs/SAFETY.md "Blocked prompts"). */
export const PROMPT_FILTERED_MESSAGE =
  "The response was filtered due to the prompt triggering Microsoft's content management policy. Please modify your prompt and retry.";

export class ChatCompletionsService<D extends ChatDeployment> {
  constructor(private readonly deps: ChatCompletionsDeps<D>) {}

  async create(command: ChatCompletionsCommand, context: ChatRequestContext): Promise<ChatCompletionsResult> {
    const deployment = this.deps.deployments.resolve(command.deploymentName, command.body.model, command.api ?? "azure");
    const trace: Trace = { span: undefined, settled: false };
    if (this.deps.tracer) {
      const started = { requestModel: command.body.model || deployment.name, deployment: deployment.name, requestId: context.requestId };
      trace.span = startChatSpan(this.deps.tracer, started, performance.timeOrigin + context.arrivedAt);
    }
    try {
      return await this.start(deployment, command, context, trace);
    } catch (error) {
      const appError = error instanceof AppError ? error : undefined;
      // Refusals the usage dashboard counts (docs/ADMIN-API.md "Usage"): throttled (429) and prompt-filtered requests.
      if (appError?.code === "RATE_LIMITED" || appError?.code === "CONTENT_FILTERED") this.meterRefusal(deployment, context, appError, command.body.stream === true);
      if (trace.span && !trace.settled) failChatSpan(trace.span, appError ?? error, deployment.model.azureName);
      throw error;
    }
  }

  /** What `create` does once the deployment is known; from admission on, `settle` ends the request's span. */
  private async start(deployment: D, command: ChatCompletionsCommand, context: ChatRequestContext, trace: Trace): Promise<ChatCompletionsResult> {
    const api = command.api ?? "azure";
    deployment.authorize(context.principal);
    const chat = toChatCommand(command.body, { ...command.passThrough }, deployment.model.capabilities);
    if (trace.span) setChatSpanRequest(trace.span, { maxTokens: chat.maxTokens, temperature: chat.temperature, topP: chat.topP, choices: chat.n, stream: chat.stream });
    const streamUsage = toStreamUsage(api, chat.stream, command.passThrough.stream_options);
    await this.deps.deployments.ensureLoaded(deployment);
    const prepared = await deployment.chat.prepare(chat, context.signal);
    try {
      return await this.admitAndStart(deployment, command, context, trace, chat, streamUsage, prepared);
    } catch (error) {
      prepared.arrival.leave(); // not run: the engine stops counting on this request
      throw error;
    }
  }

  private async admitAndStart(
    deployment: D, command: ChatCompletionsCommand, context: ChatRequestContext, trace: Trace,
    chat: ChatCommand, streamUsage: ReturnType<typeof toStreamUsage>, prepared: PreparedChat,
  ): Promise<ChatCompletionsResult> {
    const filter = deployment.contentFilterFor(context.principal);
    const promptFilterResults = filter.active ? await this.checkPrompt(filter, chat, context) : undefined;
    // Reserve the worst case (prompt + every choice's max_tokens); reconciled with actual usage at the end.
    const { reservation, state } = await this.reserve(deployment, context.principal, prepared.promptTokens + prepared.maxTokens * chat.n);
    const lifetime = new RequestLifetime(context.signal, context.deadlineAt, this.deps.shutdownSignal);
    let admission: Admission;
    try {
      // Admission happens before the first byte, so 503 (queue full) and 504 (deadline) are plain errors.
      const queuedBefore = deployment.scheduler.stats().queued;
      const admitting = deployment.scheduler.admit({ tenant: context.principal.id, slots: chat.n, signal: lifetime.signal, deadlineAt: context.deadlineAt });
      // A request queued here is not on its way to the engine: no ready prompt waits for it meanwhile.
      const queued = deployment.scheduler.stats().queued > queuedBefore;
      if (queued) prepared.arrival.idle();
      admission = await admitting;
      if (queued) prepared.arrival.resume();
    } catch (error) {
      lifetime.dispose();
      await this.commit(reservation, 0, context.log);
      throw lifetime.explain(error);
    }
    context.log.debug({ event: "scheduler.admitted", queuedMs: Math.round(admission.queuedMs) }, "admitted");
    this.deps.metrics.queueWait.observe(admission.queuedMs / 1000);
    const meta: ResponseMeta = { id: createCompletionId(), created: Math.floor(Date.now() / 1000), model: deployment.model.azureName };
    const exchange: Exchange = {
      deployment, context, prepared, meta, lifetime, admission, reservation, usage: undefined, sawOutput: false, filter,
      promptFilterResults: filter.annotates ? promptFilterResults : undefined, firstOutputAt: undefined, span: trace.span,
    };
    trace.settled = true;
    const contentPolicy = filter.describe();
    if (!chat.stream) return { stream: false, response: await this.collect(exchange), rateLimit: state, contentPolicy };
    const channel = new AsyncChannel<ChatCompletionChunk>(STREAM_HIGH_WATER_MARK, () => lifetime.cancel("the reader stopped"));
    // A stopped request must wind down (free its sequence, settle its quota) even when its reader stalls.
    lifetime.signal.addEventListener("abort", () => channel.unblock(), { once: true });
    void this.pump(exchange, channel, new StreamChunks(meta, streamUsage));
    return { stream: true, chunks: channel, rateLimit: state, contentPolicy };
  }

  /**
   * The prompt stage of content safety: the request's message text (not the assistant's earlier turns) is
   * classified before any quota or sequence is taken; a blocked prompt is Azure's 400 `content_filter`.
   */
  private async checkPrompt(filter: ContentFilter, chat: ChatCommand, context: ChatRequestContext): Promise<WireFilterResults> {
    const text = chat.messages.filter((m) => m.role !== "assistant").map((m) => m.content).join("\n");
    const abort = toAbortSignal(context.signal);
    try {
      const verdict = await filter.check(text, "prompt", abort.signal);
      if (verdict.filtered) {
        context.log.info({ event: "content_filter.prompt_blocked", reasons: verdict.reasons }, "prompt blocked by the content filter");
        throw new AppError("CONTENT_FILTERED", PROMPT_FILTERED_MESSAGE, {
          param: "prompt",
          innerError: { code: "ResponsibleAIPolicyViolation", content_filter_result: verdict.results },
        });
      }
      return verdict.results;
    } finally {
      abort.dispose();
    }
  }

  /** Checks and reserves the deployment's (and the caller's own) limits; 429 with retry headers when over. */
  private async reserve(deployment: ChatDeployment, principal: Principal, tokens: number): Promise<{ reservation: Reservation; state: RateLimitState }> {
    const limits: Limit[] = [deployment.limit];
    if (principal.requestsPerMinute !== null || principal.tokensPerMinute !== null) {
      limits.push({ scope: `principal:${principal.id}`, requestsPerMinute: principal.requestsPerMinute ?? Infinity, tokensPerMinute: principal.tokensPerMinute ?? Infinity });
    }
    const result = await this.deps.quota.reserve(limits, tokens).catch((error: unknown) => {
      // Fail closed: without the shared counters the limits cannot be enforced.
      throw new AppError("OVERLOADED", "Rate limiting is unavailable; retry shortly.", { retryAfterSeconds: 1, cause: error });
    });
    if (result.ok) return { reservation: result.reservation, state: result.state };
    const seconds = Math.max(1, Math.ceil(result.retryAfterMs / 1000));
    throw new AppError("RATE_LIMITED", `Rate limit is exceeded. Try again in ${seconds} seconds.`, { retryAfterSeconds: result.retryAfterMs / 1000, headers: toRateLimitHeaders(result.state) });
  }

  /** Runs to the end and builds the whole response. */
  private async collect(exchange: Exchange): Promise<ChatCompletionResponse> {
    const { prepared, meta, lifetime } = exchange;
    const choices: CompletedChoice[] = [];
    const wantLogprobs = prepared.command.topLogprobs !== undefined;
    for (let i = 0; i < prepared.command.n; i++) choices.push({ content: "", finishReason: "length", toolCalls: undefined, logprobs: wantLogprobs ? [] : undefined });
    let response: ChatCompletionResponse | undefined;
    let status = 200;
    try {
      await this.run(exchange, {
        text(index, text, logprobs) {
          const choice = choices[index]!;
          choice.content += text;
          if (logprobs) choice.logprobs?.push(...logprobs);
        },
        toolCalls(index, calls) {
          choices[index]!.toolCalls = calls;
        },
        end(index, finishReason, usage, filterResults) {
          choices[index]!.finishReason = finishReason;
          if (filterResults && exchange.promptFilterResults) choices[index]!.contentFilterResults = filterResults;
          if (usage) response = toCompletionResponse(meta, choices, usage, exchange.promptFilterResults);
        },
      });
      if (!response) throw lifetime.explain(new Error("generation ended early"));
      return response;
    } catch (error) {
      const explained = lifetime.explain(error);
      status = explained instanceof AppError ? statusOf(explained.code) : 500;
      throw explained;
    } finally {
      await this.settle(exchange, status);
    }
  }

  /** Runs in the background of a stream, feeding `channel`; failures after the first byte end it with an error. */
  private async pump(exchange: Exchange, channel: AsyncChannel<ChatCompletionChunk>, chunks: StreamChunks): Promise<void> {
    const { prepared, lifetime, context } = exchange;
    try {
      if (exchange.promptFilterResults) await channel.push(chunks.promptAnnotation(exchange.promptFilterResults));
      for (let index = 0; index < prepared.command.n; index++) await channel.push(chunks.role(index));
      await this.run(exchange, {
        text: (index, text, logprobs) => channel.push(chunks.content(index, text, logprobs)),
        toolCalls: (index, calls) => channel.push(chunks.toolCalls(index, calls)),
        end: async (index, finishReason, usage, filterResults) => {
          for (const chunk of chunks.end(index, finishReason, usage, exchange.promptFilterResults ? filterResults : undefined)) await channel.push(chunk);
        },
      });
      // Cut short by the deadline or the shutdown: the reader must see an error, not a quiet end.
      const reason = lifetime.endReason();
      if (reason === "deadline" || reason === "shutdown") channel.fail(lifetime.explain(undefined));
      else channel.close();
    } catch (error) {
      const explained = lifetime.explain(error);
      if (!(explained instanceof AppError) || statusOf(explained.code) >= 500) context.log.error({ event: "stream.failed", err: error }, "stream failed after the first byte");
      channel.fail(explained);
    } finally {
      // Streams answer 200 whatever happens after the headers (the store records the status sent).
      await this.settle(exchange, 200);
    }
  }

  /** The generation, with time to first output recorded once, whichever sink call comes first. */
  private async run(exchange: Exchange, sink: GenerationSink): Promise<void> {
    const note = () => {
      if (exchange.sawOutput) return;
      exchange.sawOutput = true;
      exchange.firstOutputAt = performance.now();
      const ttftMs = exchange.firstOutputAt - exchange.context.arrivedAt;
      this.deps.metrics.timeToFirstToken.observe(ttftMs / 1000);
      if (exchange.span) noteFirstToken(exchange.span, ttftMs);
    };
    await exchange.deployment.chat.run(exchange.prepared, exchange.lifetime.signal, {
      text: (index, text, logprobs) => (note(), sink.text(index, text, logprobs)),
      toolCalls: (index, calls) => (note(), sink.toolCalls(index, calls)),
      end: (index, finishReason, usage, filterResults) => (note(), sink.end(index, finishReason, usage, filterResults)),
    }, (usage) => (exchange.usage = usage), exchange.filter.active ? { filter: exchange.filter, windowChars: exchange.filter.policy.streamWindowChars } : undefined);
  }

  /** Once per admitted request, finished or not: frees the sequences, reconciles the quota, meters the usage. */
  private async settle(exchange: Exchange, status: number): Promise<void> {
    const { context, deployment, prepared, lifetime, admission } = exchange;
    admission.release();
    lifetime.dispose();
    const usage = exchange.usage ?? { promptTokens: prepared.promptTokens, completionTokens: 0, completed: false, finishReasons: [] };
    const { metrics } = this.deps;
    metrics.promptTokens.inc(usage.promptTokens);
    metrics.completionTokens.inc(usage.completionTokens);
    const durationMs = performance.now() - context.arrivedAt;
    const endReason = lifetime.endReason();
    // The request's one log line (the transport skips its own once told, through onLogged).
    // A vision request also logs how long its image took (download, decode, preprocessing): never the image itself.
    const image = prepared.imageTimings && {
      fetchMs: Math.round(prepared.imageTimings.fetchMs),
      decodeMs: Math.round(prepared.imageTimings.timings.decodeMs),
      preprocessMs: Math.round(prepared.imageTimings.timings.preprocessMs),
    };
    context.log.info({ event: "request.completed", route: "chat.completions", ...usage, status, stream: prepared.command.stream, endReason, queuedMs: Math.round(admission.queuedMs), durationMs: Math.round(durationMs), ...(image ? { image } : {}) }, "request.completed");
    context.onLogged?.();
    this.deps.usage.record({
      requestId: context.requestId, principal: context.principal.id, deployment: deployment.name, model: deployment.model.azureName,
      promptTokens: usage.promptTokens, completionTokens: usage.completionTokens, status, stream: prepared.command.stream,
      completed: usage.completed, queuedMs: admission.queuedMs, durationMs, createdAt: new Date(),
      ttftMs: exchange.firstOutputAt === undefined ? null : exchange.firstOutputAt - context.arrivedAt,
      filtered: usage.finishReasons.includes("content_filter"),
    });
    if (exchange.span) {
      endChatSpan(exchange.span, {
        responseModel: deployment.model.azureName, responseId: exchange.meta.id, inputTokens: usage.promptTokens, outputTokens: usage.completionTokens,
        finishReasons: usage.finishReasons, status, error: status >= 400 ? lifetime.explain(undefined) : undefined,
      });
    }
    await this.commit(exchange.reservation, usage.promptTokens + usage.completionTokens, context.log);
  }

  /** Meters a request refused before it ran (no tokens): the dashboard's throttled and filtered counts. */
  private meterRefusal(deployment: D, context: ChatRequestContext, error: AppError, stream: boolean): void {
    this.deps.usage.record({
      requestId: context.requestId, principal: context.principal.id, deployment: deployment.name, model: deployment.model.azureName,
      promptTokens: 0, completionTokens: 0, status: statusOf(error.code), stream, completed: false, queuedMs: 0,
      durationMs: performance.now() - context.arrivedAt, createdAt: new Date(), ttftMs: null, filtered: error.code === "CONTENT_FILTERED",
    });
  }

  private async commit(reservation: Reservation, tokens: number, log: RequestLog): Promise<void> {
    await reservation.commit(tokens).catch((error: unknown) => log.warn({ event: "quota.commit_failed", err: error }, "quota not reconciled"));
  }
}
