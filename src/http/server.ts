/**
 * The HTTP transport (fastify is confined to src/http). Routes are served at `/`, under
 * `/models` (Foundry-style base URLs) and, for OpenAI clients, under `/v1`.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Logger } from "pino";
import { createServer as createPlainServer, type Server as PlainServer } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { Server as TlsServer } from "node:tls";
import { AppError } from "../errors/app-error.ts";
import { toHttpError } from "../errors/http-mapping.ts";
import { createRequestId } from "../lib/ids.ts";
import type { Authenticator } from "../auth/authenticator.ts";
import type { Quota } from "../quota/quota.ts";
import { toRateLimitHeaders } from "../quota/rate-limit-headers.ts";
import type { Metrics } from "../observability/metrics.ts";
import { unauthenticated } from "../auth/authenticator.ts";
import { toValidationDetails, type AjvErrorLike } from "./validation-errors.ts";
import { registerJsonBodyParser } from "./json-body.ts";
import { coerceLax } from "../protocol/lax-coercion.ts";
import { registerChatCompletionsRoutes, type ChatCompletions } from "./routes/chat-completions.route.ts";
import { registerInfoRoutes, type InfoDeployments } from "./routes/info.route.ts";
import { registerAdminRoutes } from "./routes/admin.route.ts";
import type { AdminDeployment, AdminService } from "../admin/admin-service.ts";
import { locateWebBuild, registerWebPages } from "./static.ts";
import { decorateRequestState, ROUTE_PREFIXES } from "./request-state.ts";
import { createClientErrorHandler, EarlyAnswers, limitConnectionsPerClient, toNodeTimeouts } from "./transport-limits.ts";
import { readTlsCredentials, watchTlsCredentials, type TlsFiles } from "./tls-credentials.ts";

export interface HttpServerDeps {
  logger: Logger;
  authenticator: Authenticator;
  /** The chat use case. */
  chat: ChatCompletions;
  /** Deployments, for /info and /v1/models. */
  deployments: InfoDeployments;
  /** "loading" | "ready" | "draining": what /health reports (503 unless ready). */
  state: () => "loading" | "ready" | "draining";
  metrics: Metrics;
  quota: Quota;
  /** The admin API (`/admin/*`, docs/ADMIN-API.md); undefined = not served. */
  admin?: { service: AdminService<AdminDeployment>; openWhenUnauthenticated: boolean } | undefined;
}

export interface HttpServerOptions {
  /** Largest accepted request body; larger → 413. */
  bodyLimitBytes: number;
  /** Deadline of a chat request, from arrival; 0 = none. */
  requestTimeoutMs: number;
  /** Longest a client may take to send a request's headers and body, from its first byte; then 408 and close. 0 = none. */
  bodyTimeoutMs: number;
  /** Most connections one client address may hold open; further ones are closed at once. 0 = no cap. */
  maxConnectionsPerClient: number;
  /** Serve HTTPS with these PEM files (reloaded when they change); undefined = plain HTTP. */
  tls?: TlsFiles | undefined;
}

/** How long an idle keep-alive connection stays open (fastify's default: above common proxies' 60 s). */
const KEEP_ALIVE_TIMEOUT_MS = 72_000;

const isHealthPath = (url: string): boolean => /^\/(models\/)?health(\?|$)/.test(url);

export function createHttpServer(deps: HttpServerDeps, options: HttpServerOptions): FastifyInstance {
  const timeouts = toNodeTimeouts(options.bodyTimeoutMs);
  const tls = options.tls ? readTlsCredentials(options.tls) : undefined;
  const earlyAnswers = new EarlyAnswers();
  const app = Fastify({
    serverFactory: (handler) => {
      // Typed as a plain HTTP server: requests, hooks and routes are the same over TLS.
      const server = tls ? (createTlsServer({ ...tls, ...timeouts }, handler) as unknown as PlainServer) : createPlainServer(timeouts, handler);
      server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS; // fastify's default, which it sets only on servers it creates
      return server;
    },
    clientErrorHandler: createClientErrorHandler(earlyAnswers, deps.logger),
    loggerInstance: deps.logger as FastifyBaseLogger,
    // One `request.completed` line of our own (onResponse) replaces fastify's pair of request logs.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimitBytes,
    // close() runs after the drain, so what is left are idle keep-alive sockets: close them rather than wait for their timeout.
    forceCloseConnections: true,
    genReqId: () => createRequestId(),
    routerOptions: { ignoreTrailingSlash: true },
    // No coercion in ajv: lax-mode conversions happen once, before validation (the preValidation hook below).
    // strictNumbers: Infinity and NaN (`1e400` parses to Infinity) are not numbers.
    ajv: { customOptions: { coerceTypes: false, strictNumbers: true, allErrors: true, removeAdditional: false, useDefaults: false, strict: false } },
  });
  decorateRequestState(app);
  limitConnectionsPerClient(app.server, options.maxConnectionsPerClient, deps.logger);
  if (options.tls && tls) {
    const server = app.server as unknown as TlsServer;
    const watcher = watchTlsCredentials(options.tls, tls, (credentials) => server.setSecureContext(credentials), { logger: deps.logger });
    app.addHook("onClose", (_instance, done) => {
      watcher.close();
      done();
    });
  }
  // An answer sent before the body arrived (a 413, a 401): read the rest so the client can read the answer.
  app.addHook("onSend", (request, reply, payload, done) => {
    if (!request.raw.complete && !earlyAnswers.has(request.raw.socket)) {
      if (reply.getHeader("connection") === "close") reply.removeHeader("connection");
      earlyAnswers.drain(request.raw, 4 * options.bodyLimitBytes);
    }
    done(null, payload);
  });
  registerJsonBodyParser(app);
  // Azure's pydantic lax mode (src/protocol/lax-coercion.ts), along the route's own body schema. Registered
  // on the app, it runs before the routes' preValidation hooks (extra-parameters) and before ajv.
  app.addHook("preValidation", (request, _reply, done) => {
    const schema = request.routeOptions.schema?.body;
    if (schema && request.body !== undefined) request.body = coerceLax(schema, request.body);
    done();
  });

  app.addHook("onRequest", async (request, reply) => {
    reply.header("x-request-id", request.id);
    const clientRequestId = request.headers["x-ms-client-request-id"];
    if (typeof clientRequestId === "string") reply.header("x-ms-client-request-id", clientRequestId);
    // The playground's and dashboard's static files are public; their API calls carry the key (src/http/static.ts).
    if (isHealthPath(request.url) || request.routeOptions.config.isPublicPage === true || !deps.authenticator.isEnabled()) return;
    const principal = await deps.authenticator.authenticate({
      apiKey: headerValue(request.headers["api-key"]),
      authorization: headerValue(request.headers.authorization),
    });
    if (!principal) throw unauthenticated();
    request.principal = principal;
  });

  // Every API response reports the rate-limit state; chat responses set it from their own reservation.
  // (Callback-style hooks: an async hook costs a promise per request even when it has nothing to do.)
  app.addHook("onSend", (request, reply, payload, done) => {
    if (isHealthPath(request.url) || request.routeOptions.config.isPublicPage === true || reply.hasHeader("x-ratelimit-remaining-requests")) return done(null, payload);
    deps.quota.peek([deps.deployments.default.limit]).then(
      (state) => {
        if (state) reply.headers(toRateLimitHeaders(state));
        done(null, payload);
      },
      () => done(null, payload),
    );
  });

  app.addHook("onResponse", (request, reply, done) => {
    const route = request.routeOptions.url ?? "unmatched";
    deps.metrics.countRequest(route, reply.statusCode);
    // One line per request: a chat request that ran logged its own, with its usage.
    if (!request.completionLogged) request.log.info({ event: "request.completed", method: request.method, path: route, status: reply.statusCode, durationMs: Math.round(reply.elapsedTime) }, "request.completed");
    done();
  });

  app.setErrorHandler((error: FastifyError, request, reply) => sendError(toAppError(error, request), request, reply));
  app.setNotFoundHandler((request, reply) =>
    sendError(new AppError("ROUTE_NOT_FOUND", `No route for ${request.method} ${request.url.split("?")[0]}`), request, reply),
  );

  for (const prefix of ROUTE_PREFIXES) {
    app.get(`${prefix}/health`, async (_request, reply) => {
      const state = deps.state();
      return reply.status(state === "ready" ? 200 : 503).send({ status: state === "ready" ? "ok" : state });
    });
  }
  app.get("/metrics", async (_request, reply) => {
    reply.header("content-type", deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
  registerInfoRoutes(app, deps.deployments);
  registerChatCompletionsRoutes(app, deps.chat, { requestTimeoutMs: options.requestTimeoutMs });
  if (deps.admin) registerAdminRoutes(app, deps.admin.service, { openWhenUnauthenticated: deps.admin.openWhenUnauthenticated });
  registerWebPages(app, locateWebBuild());
  return app;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

async function sendError(error: unknown, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const response = toHttpError(error);
  if (response.status >= 500) request.log.error({ event: "request.failed", err: error }, "request failed");
  await reply.status(response.status).headers(response.headers).send(response.body);
}

/** Maps fastify's own errors (body parsing, schema validation) into the catalog. */
function toAppError(error: FastifyError, request: FastifyRequest): AppError {
  if (error instanceof AppError) return error;
  if (error.validation) {
    const context = error.validationContext ?? "body";
    const data = context === "querystring" ? request.query : request.body;
    const details = toValidationDetails(error.validation as AjvErrorLike[], data, context);
    const first = details[0];
    const where = first ? ` (${first.loc.join(".")}: ${first.msg})` : "";
    return new AppError("INVALID_REQUEST", `Invalid input${where}`, { details, param: first ? String(first.loc[1] ?? first.loc[0]) : "body" });
  }
  switch (error.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new AppError("PAYLOAD_TOO_LARGE", "Request body is too large.");
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new AppError("INVALID_REQUEST", "Content-Type must be application/json.", { param: "body" });
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return invalidJson(error.message);
  }
  if (error instanceof SyntaxError || error.statusCode === 400) return invalidJson(error.message);
  return new AppError("INTERNAL", "The server had an error processing the request.", { cause: error });
}

function invalidJson(reason: string): AppError {
  return new AppError("INVALID_REQUEST", "Invalid input: the body is not valid JSON.", {
    param: "body",
    details: [{ type: "json_invalid", loc: ["body"], msg: `JSON decode error: ${reason}` }],
  });
}
