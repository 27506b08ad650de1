/**
 * POST /chat/completions (and /models/…, /v1/…): validation, `extra-parameters`, then either a
 * JSON response or an SSE stream. Every check that can fail happens before the first byte, so
 * errors are JSON with a 4xx status; failures after that become an error frame and `[DONE]`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ChatCompletionsRequestSchema, type ChatCompletionsRequest } from "../../protocol/chat-completions.schema.ts";
import { encodeSseData, SSE_DONE } from "../../protocol/sse.ts";
import { toHttpError } from "../../errors/http-mapping.ts";
import { createCompletionId } from "../../lib/ids.ts";
import { toChatCommand } from "../../serving/chat-command.ts";
import type { GenerationSink, PreparedChat, UsageRecord } from "../../serving/chat-completions.service.ts";
import { toCompletionResponse, toContentChunk, toFinalChunk, toRoleChunk, toToolCallsChunk, type CompletedChoice, type ResponseMeta } from "../../serving/to-protocol.ts";
import { applyExtraParameters, parseExtraParametersMode, type ExtraParametersMode } from "../extra-parameters.ts";
import type { HttpServerDeps } from "../server.ts";
import { principalOf, ROUTE_PREFIXES } from "../server.ts";
import type { Principal } from "../../auth/authenticator.ts";
import type { Limit, Reservation } from "../../quota/quota.ts";
import { toRateLimitHeaders } from "../../quota/rate-limit-headers.ts";
import { AppError } from "../../errors/app-error.ts";
import type { Metrics } from "../../observability/metrics.ts";
import type { Deployment } from "../../deployments/deployment.ts";
import { Cancellation, type CancelSignal } from "../../lib/cancellation.ts";

type ChatRequest = FastifyRequest<{ Body: ChatCompletionsRequest }>;

const passedThrough = new WeakMap<FastifyRequest, Record<string, unknown>>();

interface ChatRouteOptions {
  requestTimeoutMs: number;
}

export function registerChatCompletionsRoutes(app: FastifyInstance, deps: HttpServerDeps, options: ChatRouteOptions): void {
  const paths: [string, ExtraParametersMode][] = ROUTE_PREFIXES.map((p) => [`${p}/chat/completions`, "error"]);
  // The OpenAI route: logprobs, n, logit_bias… are OpenAI's own parameters, so they pass by default.
  paths.push(["/v1/chat/completions", "pass-through"]);
  for (const [url, defaultMode] of paths) {
    app.post<{ Body: ChatCompletionsRequest }>(url, {
      schema: { body: ChatCompletionsRequestSchema },
      preValidation: (request, _reply, done) => {
        try {
          const mode = parseExtraParametersMode(request.headers["extra-parameters"], defaultMode);
          passedThrough.set(request, applyExtraParameters(request.body, mode));
          done();
        } catch (error) {
          done(error as Error);
        }
      },
      handler: async (request, reply) => handleChat(deps, options, request, reply),
    });
  }
}

/**
 * Ends a generation early for any of: the client went away, the request deadline passed, or the
 * server's drain timeout ran out. `timedOut` tells the deadline apart (504 / error frame).
 */
class RunControl {
  private readonly cancellation = new Cancellation();
  timedOut = false;
  private sawOutput = false;
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly onShutdown = () => this.cancellation.abort(new Error("server shutting down"));
  private readonly onClose = () => {
    if (!this.reply.raw.writableFinished) this.cancellation.abort(new Error("client closed the connection"));
  };

  constructor(
    private readonly reply: FastifyReply,
    private readonly arrivedAt: number,
    deadlineAt: number | undefined,
    private readonly shutdown: AbortSignal,
  ) {
    reply.raw.on("close", this.onClose);
    if (deadlineAt !== undefined) {
      this.timer = setTimeout(() => {
        this.timedOut = true;
        this.cancellation.abort(timeoutError());
      }, Math.max(0, deadlineAt - performance.now()));
    }
    if (shutdown.aborted) this.onShutdown();
    else shutdown.addEventListener("abort", this.onShutdown, { once: true });
  }

  get signal(): CancelSignal {
    return this.cancellation;
  }

  /** `sink`, with the time to first output recorded once, whichever of its calls comes first. */
  observe(metrics: Metrics, sink: GenerationSink): GenerationSink {
    const note = () => {
      if (this.sawOutput) return;
      this.sawOutput = true;
      metrics.timeToFirstToken.observe((performance.now() - this.arrivedAt) / 1000);
    };
    return {
      text: (index, text, logprobs) => (note(), sink.text(index, text, logprobs)),
      toolCalls: (index, calls) => (note(), sink.toolCalls(index, calls)),
      end: (index, finishReason, usage) => (note(), sink.end(index, finishReason, usage)),
    };
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.reply.raw.off("close", this.onClose);
    this.shutdown.removeEventListener("abort", this.onShutdown);
  }
}

function timeoutError(): AppError {
  return new AppError("GENERATION_TIMEOUT", "The request did not complete within the server's request timeout.");
}

async function handleChat(deps: HttpServerDeps, options: ChatRouteOptions, request: ChatRequest, reply: FastifyReply): Promise<unknown> {
  const arrivedAt = performance.now();
  const principal = principalOf(request);
  const header = request.headers["azureml-model-deployment"];
  const deployment = deps.deployments.resolve(typeof header === "string" ? header : undefined, request.body.model);
  deployment.authorize(principal);
  const command = toChatCommand(request.body, passedThrough.get(request) ?? {}, deployment.model.capabilities);
  await deps.deployments.ensureLoaded(deployment);
  const prepared = await deployment.chat.prepare(command);
  // Reserve the worst case (prompt + every choice's max_tokens); reconciled with actual usage below.
  const reservation = await reserveQuota(deps, deployment, principal, prepared.promptTokens + prepared.maxTokens * command.n, reply);
  const meta: ResponseMeta = { id: createCompletionId(), created: Math.floor(Date.now() / 1000), model: deployment.model.azureName };
  const deadlineAt = options.requestTimeoutMs > 0 ? arrivedAt + options.requestTimeoutMs : undefined;
  const run = new RunControl(reply, arrivedAt, deadlineAt, deps.shutdownSignal);
  let billedTokens = 0;
  let queuedMs = 0;
  const onUsage = (usage: UsageRecord) => {
    billedTokens = usage.promptTokens + usage.completionTokens;
    recordUsage(deps, request, usage);
    deps.usage.record({
      requestId: request.id, principal: principal.id, deployment: deployment.name, model: deployment.model.azureName,
      promptTokens: usage.promptTokens, completionTokens: usage.completionTokens, status: 200, stream: command.stream,
      completed: usage.completed, queuedMs, durationMs: performance.now() - arrivedAt, createdAt: new Date(),
    });
  };
  try {
    // Admission happens before the first byte, so 503 (queue full) and 504 (deadline) are plain JSON errors.
    const admission = await deployment.scheduler.admit({ tenant: principal.id, slots: command.n, signal: run.signal, ...(deadlineAt === undefined ? {} : { deadlineAt }) });
    try {
      queuedMs = admission.queuedMs;
      request.log.debug({ event: "scheduler.admitted", queuedMs: Math.round(queuedMs) }, "admitted");
      deps.metrics.queueWait.observe(queuedMs / 1000);
      const exchange: Exchange = { deps, deployment, request, reply, prepared, meta, run, onUsage };
      return command.stream ? await streamChat(exchange) : await collectChat(exchange);
    } finally {
      admission.release();
    }
  } catch (error) {
    if (run.signal.aborted && !run.timedOut && !(error instanceof AppError)) return reply.hijack(); // client gone
    throw error;
  } finally {
    run.dispose();
    await reservation.commit(billedTokens).catch((error: unknown) => request.log.warn({ event: "quota.commit_failed", err: error }, "quota not reconciled"));
  }
}

/** Checks and reserves the deployment's (and the caller's own) limits; 429 with retry headers when over. */
async function reserveQuota(deps: HttpServerDeps, deployment: Deployment, principal: Principal, tokens: number, reply: FastifyReply): Promise<Reservation> {
  const limits: Limit[] = [deployment.limit];
  if (principal.requestsPerMinute !== null || principal.tokensPerMinute !== null) {
    limits.push({ scope: `principal:${principal.id}`, requestsPerMinute: principal.requestsPerMinute ?? Infinity, tokensPerMinute: principal.tokensPerMinute ?? Infinity });
  }
  const result = await deps.quota.reserve(limits, tokens).catch((error: unknown) => {
    // Fail closed: without the shared counters the limits cannot be enforced.
    throw new AppError("OVERLOADED", "Rate limiting is unavailable; retry shortly.", { retryAfterSeconds: 1, cause: error });
  });
  const headers = toRateLimitHeaders(result.state);
  if (result.ok) {
    reply.headers(headers);
    return result.reservation;
  }
  const seconds = Math.max(1, Math.ceil(result.retryAfterMs / 1000));
  throw new AppError("RATE_LIMITED", `Rate limit is exceeded. Try again in ${seconds} seconds.`, { retryAfterSeconds: result.retryAfterMs / 1000, headers });
}

/** One admitted request on its way to the client. */
interface Exchange {
  deps: HttpServerDeps;
  deployment: Deployment;
  onUsage: (usage: UsageRecord) => void;
  request: ChatRequest;
  reply: FastifyReply;
  prepared: PreparedChat;
  meta: ResponseMeta;
  run: RunControl;
}

async function collectChat(exchange: Exchange): Promise<unknown> {
  const { deps, deployment, request, reply, prepared, meta, run, onUsage } = exchange;
  const wantLogprobs = prepared.command.topLogprobs !== undefined;
  const choices: CompletedChoice[] = [];
  for (let i = 0; i < prepared.command.n; i++) choices.push({ content: "", finishReason: "length", toolCalls: undefined, logprobs: wantLogprobs ? [] : undefined });
  let response: unknown;
  await deployment.chat.run(prepared, run.signal, run.observe(deps.metrics, {
    text(index, text, logprobs) {
      const choice = choices[index]!;
      choice.content += text;
      if (logprobs) choice.logprobs?.push(...logprobs);
    },
    toolCalls(index, calls) {
      choices[index]!.toolCalls = calls;
    },
    end(index, finishReason, usage) {
      choices[index]!.finishReason = finishReason;
      if (usage) response = toCompletionResponse(meta, choices, usage);
    },
  }), onUsage);
  if (response) return response;
  if (run.timedOut) throw timeoutError();
  request.log.info({ event: "request.aborted" }, "generation stopped before the end");
  return reply.hijack();
}

async function streamChat(exchange: Exchange): Promise<void> {
  const { deps, deployment, request, reply, prepared, meta, run, onUsage } = exchange;
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string>),
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
  });
  // Resolves only when the socket is full (backpressure); otherwise nothing to wait for.
  const write = (frame: string): Promise<void> | undefined => {
    if (raw.destroyed || raw.write(frame)) return undefined;
    return new Promise<void>((resolve) => raw.once("drain", resolve).once("close", resolve));
  };
  try {
    for (let index = 0; index < prepared.command.n; index++) await write(encodeSseData(toRoleChunk(meta, index)));
    await deployment.chat.run(prepared, run.signal, run.observe(deps.metrics, {
      text(index, text, logprobs) {
        return write(encodeSseData(toContentChunk(meta, index, text, logprobs)));
      },
      toolCalls(index, calls) {
        return write(encodeSseData(toToolCallsChunk(meta, index, calls)));
      },
      end(index, finishReason, usage) {
        return write(encodeSseData(toFinalChunk(meta, index, finishReason, usage)));
      },
    }), onUsage);
    if (run.timedOut) await write(encodeSseData(toHttpError(timeoutError()).body));
  } catch (error) {
    request.log.error({ event: "stream.failed", err: error }, "stream failed after the first byte");
    await write(encodeSseData(toHttpError(error).body));
  } finally {
    if (!raw.destroyed) {
      await write(SSE_DONE);
      raw.end();
    }
    request.log.info({ event: "request.completed", status: 200, stream: true, aborted: run.signal.aborted, timedOut: run.timedOut }, "request.completed");
  }
}

/** Every request's usage, finished or cut short: one log line and the token counters. */
function recordUsage(deps: HttpServerDeps, request: FastifyRequest, usage: UsageRecord): void {
  deps.metrics.promptTokens.inc(usage.promptTokens);
  deps.metrics.completionTokens.inc(usage.completionTokens);
  request.log.info({ event: "chat.usage", ...usage }, "chat usage");
}
