/**
 * POST /chat/completions (and /models/…, /v1/…): the HTTP adapter of the chat use case. It reads
 * the headers, turns a closed socket into cancellation, and writes what the use case returns: a
 * JSON body, or SSE frames with backpressure. Errors before the first byte are plain JSON errors
 * (the server's error handler); after it, an error frame, then the connection ends without
 * `data: [DONE]` and without HTTP's last chunk (docs/AZURE-API.md "Streaming").
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ChatCompletionsRequestSchema, type ChatCompletionsRequest } from "../../protocol/chat-completions.schema.ts";
import type { ChatCompletionChunk } from "../../protocol/chat-completions.schema.ts";
import { encodeSseData, SSE_DONE } from "../../protocol/sse.ts";
import { toHttpError } from "../../errors/http-mapping.ts";
import { AppError } from "../../errors/app-error.ts";
import { toRateLimitHeaders } from "../../quota/rate-limit-headers.ts";
import { Cancellation } from "../../lib/cancellation.ts";
import type { ChatCompletionsResult } from "../../serving/chat-completions.service.ts";
import type { ChatCompletionsCommand, ChatRequestContext } from "../../serving/chat-completions.service.ts";
import type { ChatApi } from "../../serving/stream-usage.ts";
import { applyExtraParameters, parseExtraParametersMode, type ExtraParametersMode } from "../extra-parameters.ts";
import { principalOf, ROUTE_PREFIXES } from "../request-state.ts";

/** The use case, as the route sees it. */
export interface ChatCompletions {
  create(command: ChatCompletionsCommand, context: ChatRequestContext): Promise<ChatCompletionsResult>;
}

export interface ChatRouteOptions {
  /** Deadline of a chat request from arrival, ms; 0 = none. */
  requestTimeoutMs: number;
}

/** Every method but POST: answered 405 with `allow: POST` rather than 404 (RFC 9110, section 15.5.6). */
const OTHER_METHODS = ["GET", "PUT", "PATCH", "DELETE"] as const;

export function registerChatCompletionsRoutes(app: FastifyInstance, chat: ChatCompletions, options: ChatRouteOptions): void {
  const paths: [string, ExtraParametersMode, ChatApi][] = ROUTE_PREFIXES.map((p) => [`${p}/chat/completions`, "error", "azure"]);
  // The OpenAI route: logprobs, n, logit_bias, stream_options… are OpenAI's own parameters, so they pass by default.
  paths.push(["/v1/chat/completions", "pass-through", "openai"]);
  for (const [url, defaultMode, api] of paths) {
    app.route({
      method: [...OTHER_METHODS],
      url,
      handler: (request) => {
        throw new AppError("METHOD_NOT_ALLOWED", `Method ${request.method} is not allowed on ${url}; use POST.`, { headers: { allow: "POST" } });
      },
    });
    app.post<{ Body: ChatCompletionsRequest }>(url, {
      schema: { body: ChatCompletionsRequestSchema },
      preValidation: (request, _reply, done) => {
        try {
          request.passThrough = applyExtraParameters(request.body, parseExtraParametersMode(request.headers["extra-parameters"], defaultMode));
          done();
        } catch (error) {
          done(error as Error);
        }
      },
      handler: (request, reply) => handleChat(chat, { ...options, api }, request, reply),
    });
  }
}

async function handleChat(chat: ChatCompletions, options: ChatRouteOptions & { api: ChatApi }, request: FastifyRequest<{ Body: ChatCompletionsRequest }>, reply: FastifyReply): Promise<unknown> {
  const arrivedAt = performance.now();
  const gone = new Cancellation();
  const onClose = () => {
    if (!reply.raw.writableFinished) gone.abort(new Error("client closed the connection"));
  };
  reply.raw.on("close", onClose);
  try {
    const header = request.headers["azureml-model-deployment"];
    const result = await chat.create(
      { body: request.body, passThrough: request.passThrough ?? {}, deploymentName: typeof header === "string" ? header : undefined, api: options.api },
      {
        principal: principalOf(request),
        signal: gone,
        arrivedAt,
        deadlineAt: options.requestTimeoutMs > 0 ? arrivedAt + options.requestTimeoutMs : undefined,
        requestId: request.id,
        log: request.log,
        onLogged: () => (request.completionLogged = true),
      },
    );
    reply.headers(toRateLimitHeaders(result.rateLimit));
    // Which content-safety policy applied (docs/SAFETY.md "What runs by default").
    reply.header("x-phiserve-content-policy", result.contentPolicy);
    if (!result.stream) return result.response;
    await writeStream(reply, result.chunks);
    return reply;
  } catch (error) {
    if (error instanceof AppError && error.code === "CLIENT_CLOSED") return reply.hijack(); // nobody to answer
    throw error;
  } finally {
    reply.raw.off("close", onClose);
  }
}

/**
 * Writes the chunks as SSE, waiting whenever the socket is full. A failure becomes an error frame
 * (the openai SDK raises on it), then the connection ends with neither `data: [DONE]` nor HTTP's
 * terminating chunk: a body cut short is a transport error in every client, including the Python
 * Azure client, which skips frames without choices and would read `[DONE]` or a clean end as a
 * normal finish (docs/AZURE-API.md "Streaming").
 */
async function writeStream(reply: FastifyReply, chunks: AsyncIterable<ChatCompletionChunk>): Promise<void> {
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
  let failed = false;
  try {
    for await (const chunk of chunks) {
      if (raw.destroyed) break; // leaving the loop stops the generation
      const pending = write(encodeSseData(chunk));
      if (pending) await pending;
    }
  } catch (error) {
    failed = true;
    // Wait until the frame has reached the socket: the connection is ended right after it.
    if (!raw.destroyed) {
      await new Promise<void>((resolve) => {
        raw.once("close", resolve);
        raw.write(encodeSseData(toHttpError(error).body), () => resolve());
      });
    }
  } finally {
    if (!raw.destroyed && failed) {
      // FIN after the error frame, not RST, so the frame is read; the response never completes.
      raw.socket?.end();
    } else if (!raw.destroyed) {
      const pending = write(SSE_DONE);
      if (pending) await pending;
      raw.end();
    }
  }
}
