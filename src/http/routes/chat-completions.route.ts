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
import type { PreparedChat, Usage } from "../../serving/chat-completions.service.ts";
import { toCompletionResponse, toContentChunk, toFinalChunk, toRoleChunk, toToolCallsChunk, type CompletedChoice, type ResponseMeta } from "../../serving/to-protocol.ts";
import type { ChoiceFinishReason } from "../../serving/choice-output.ts";
import { applyExtraParameters, parseExtraParametersMode, type ExtraParametersMode } from "../extra-parameters.ts";
import type { HttpServerDeps } from "../server.ts";
import { ROUTE_PREFIXES } from "../server.ts";

type ChatRequest = FastifyRequest<{ Body: ChatCompletionsRequest }>;

const passedThrough = new WeakMap<FastifyRequest, Record<string, unknown>>();

export function registerChatCompletionsRoutes(app: FastifyInstance, deps: HttpServerDeps): void {
  const paths: [string, ExtraParametersMode][] = ROUTE_PREFIXES.map((p) => [`${p}/chat/completions`, "error"]);
  // The OpenAI route: logprobs, n, logit_bias… are OpenAI's own parameters, so they pass by default.
  paths.push(["/v1/chat/completions", "pass-through"]);
  for (const [url, defaultMode] of paths) {
    app.post<{ Body: ChatCompletionsRequest }>(url, {
      schema: { body: ChatCompletionsRequestSchema },
      preValidation: async (request) => {
        const mode = parseExtraParametersMode(request.headers["extra-parameters"], defaultMode);
        passedThrough.set(request, applyExtraParameters(request.body, mode));
      },
      handler: async (request, reply) => handleChat(deps, request, reply),
    });
  }
}

async function handleChat(deps: HttpServerDeps, request: ChatRequest, reply: FastifyReply): Promise<unknown> {
  const command = toChatCommand(request.body, passedThrough.get(request) ?? {}, deps.model.capabilities);
  const prepared = await deps.chat.prepare(command);
  const meta: ResponseMeta = { id: createCompletionId(), created: Math.floor(Date.now() / 1000), model: deps.model.azureName };
  const controller = new AbortController();
  reply.raw.on("close", () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  if (!command.stream) return collectChat(deps, request, reply, prepared, meta, controller);
  return streamChat(deps, request, reply, prepared, meta, controller);
}

async function collectChat(
  deps: HttpServerDeps,
  request: ChatRequest,
  reply: FastifyReply,
  prepared: PreparedChat,
  meta: ResponseMeta,
  controller: AbortController,
): Promise<unknown> {
  const wantLogprobs = prepared.command.topLogprobs !== undefined;
  const choices: CompletedChoice[] = Array.from({ length: prepared.command.n }, () => ({ content: "", finishReason: "length", toolCalls: undefined, logprobs: wantLogprobs ? [] : undefined }));
  for await (const event of deps.chat.generate(prepared, controller.signal)) {
    const choice = choices[event.index]!;
    if (event.type === "text") {
      choice.content += event.text;
      if (event.logprobs) choice.logprobs?.push(...event.logprobs);
      continue;
    }
    if (event.type === "tool_calls") {
      choice.toolCalls = event.calls;
      continue;
    }
    choice.finishReason = event.finishReason;
    if (event.usage) {
      logUsage(request, event.usage, choices.map((c) => c.finishReason));
      return toCompletionResponse(meta, choices, event.usage);
    }
  }
  request.log.info({ event: "request.aborted" }, "client went away");
  return reply.hijack();
}

async function streamChat(
  deps: HttpServerDeps,
  request: ChatRequest,
  reply: FastifyReply,
  prepared: PreparedChat,
  meta: ResponseMeta,
  controller: AbortController,
): Promise<void> {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string>),
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
  });
  const write = async (frame: string): Promise<void> => {
    if (raw.destroyed) return;
    if (!raw.write(frame)) await new Promise<void>((resolve) => raw.once("drain", resolve).once("close", resolve));
  };
  try {
    for (let index = 0; index < prepared.command.n; index++) await write(encodeSseData(toRoleChunk(meta, index)));
    const finishReasons: ChoiceFinishReason[] = [];
    for await (const event of deps.chat.generate(prepared, controller.signal)) {
      if (event.type === "text") await write(encodeSseData(toContentChunk(meta, event.index, event.text, event.logprobs)));
      else if (event.type === "tool_calls") await write(encodeSseData(toToolCallsChunk(meta, event.index, event.calls)));
      else {
        finishReasons[event.index] = event.finishReason;
        if (event.usage) logUsage(request, event.usage, finishReasons);
        await write(encodeSseData(toFinalChunk(meta, event.index, event.finishReason, event.usage)));
      }
    }
  } catch (error) {
    request.log.error({ event: "stream.failed", err: error }, "stream failed after the first byte");
    await write(encodeSseData(toHttpError(error).body));
  } finally {
    if (!raw.destroyed) {
      await write(SSE_DONE);
      raw.end();
    }
    request.log.info({ event: "request.completed", status: 200, stream: true, aborted: controller.signal.aborted }, "request.completed");
  }
}

function logUsage(request: FastifyRequest, usage: Usage, finishReasons: readonly ChoiceFinishReason[]): void {
  request.log.info({ event: "chat.usage", promptTokens: usage.promptTokens, completionTokens: usage.completionTokens, finishReasons }, "chat usage");
}
