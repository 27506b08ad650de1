/**
 * Limits on what a client may hold open at the transport level (issue 10): how long it may take to
 * send a request (headers and body), how many connections one address may keep, and how an early
 * answer (a 413 while the body is still arriving) reaches a client that is still sending.
 * docs/CONFIG.md "Transport limits" documents the behaviour; the numbers below are its defaults.
 */
import type { IncomingMessage, ServerOptions } from "node:http";
import type { Server, Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { AppError } from "../errors/app-error.ts";
import { toHttpError } from "../errors/http-mapping.ts";

/**
 * Node's HTTP timeouts for a body read timeout of `bodyTimeoutMs` (0 = none). Node's
 * `requestTimeout` runs from the first byte of a request until its body is complete (it does not
 * cover the response), so it is exactly a header-and-body read timeout. Node checks it only every
 * `connectionsCheckingInterval` (default 30 s, which would let a 20 s timeout run 50 s): check ten
 * times per timeout, at most once per second. Fastify defaults `requestTimeout` to 0 (never), which
 * is why stalled bodies stayed open indefinitely.
 */
export function toNodeTimeouts(bodyTimeoutMs: number): Pick<ServerOptions, "requestTimeout" | "headersTimeout" | "connectionsCheckingInterval"> {
  // No body timeout: Node's own 60 s for the headers stays.
  if (bodyTimeoutMs <= 0) return { requestTimeout: 0, headersTimeout: 60_000 };
  return {
    requestTimeout: bodyTimeoutMs,
    // Node refuses a headers timeout longer than the request timeout.
    headersTimeout: Math.min(60_000, bodyTimeoutMs),
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(bodyTimeoutMs / 10))),
  };
}

/**
 * Sockets whose current request was answered before its body had arrived (a 401 from the auth
 * hook, a 413): a later request timeout on them must close them silently, since a 408 written
 * after the answer would read as the answer to the client's next request.
 */
export class EarlyAnswers {
  readonly #sockets = new WeakSet<Duplex>();

  /**
   * Called as a response is about to be sent while its request's body is incomplete: the rest of
   * the body is read and discarded so the client, still sending, can read the answer. Closing
   * instead, as fastify does after a body-parser error (`connection: close`), resets the
   * connection while the client's bytes are unread, and the client may lose the answer to the
   * reset (8 of 24 uploads of 4-16 MiB did). At most `maxBytes` more are read (the time is
   * bounded by the body timeout); beyond that the connection is closed. Once the body is complete
   * the connection is an ordinary keep-alive one again.
   */
  drain(request: IncomingMessage, maxBytes: number): void {
    const socket = request.socket;
    this.#sockets.add(socket);
    let drained = 0;
    request.on("data", (chunk: Buffer) => {
      drained += chunk.length;
      if (drained > maxBytes) socket.destroy();
    });
    request.once("end", () => this.#sockets.delete(socket));
    request.resume();
  }

  has(socket: Duplex): boolean {
    return this.#sockets.has(socket);
  }
}

/**
 * Fastify's `clientErrorHandler`: what Node's HTTP parser and its timeouts report about a
 * connection. A request timeout becomes a 408 in the Azure error shape (docs/ERRORS.md
 * REQUEST_TIMEOUT), then the connection closes; other parser errors keep fastify's own answers (400,
 * 431). Nothing is written on a connection whose request was already answered.
 */
export function createClientErrorHandler(earlyAnswers: EarlyAnswers, logger: Logger) {
  return (error: NodeJS.ErrnoException, socket: Duplex): void => {
    if (error.code === "ECONNRESET" || socket.destroyed) return;
    if (!socket.writable || earlyAnswers.has(socket)) {
      socket.destroy();
      return;
    }
    if (error.code === "ERR_HTTP_REQUEST_TIMEOUT") {
      logger.info({ event: "request.body_timeout", remoteAddress: (socket as Socket).remoteAddress }, "request not received in time: 408, closing");
      const answer = toHttpError(new AppError("REQUEST_TIMEOUT", "The request was not received in time (headers and body)."));
      socket.end(toRawResponse(answer.status, "Request Timeout", answer.headers, JSON.stringify(answer.body)));
      // The client may never read: do not wait for it beyond a moment.
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    const tooLarge = error.code === "HPE_HEADER_OVERFLOW";
    const status = tooLarge ? 431 : 400;
    const body = tooLarge
      ? `{"error":"Request Header Fields Too Large","message":"Exceeded maximum allowed HTTP header size","statusCode":431}`
      : `{"error":"Bad Request","message":"Client Error","statusCode":400}`;
    socket.end(toRawResponse(status, tooLarge ? "Request Header Fields Too Large" : "Bad Request", {}, body));
    setTimeout(() => socket.destroy(), 1000).unref();
  };
}

function toRawResponse(status: number, reason: string, headers: Record<string, string>, body: string): string {
  const lines = [`HTTP/1.1 ${status} ${reason}`, "connection: close", "content-type: application/json; charset=utf-8", `content-length: ${Buffer.byteLength(body)}`];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  return `${lines.join("\r\n")}\r\n\r\n${body}`;
}

/**
 * Caps the connections one client address holds open at `maxPerClient` (0 = no cap): a further
 * connection is closed as soon as it is accepted (before TLS or HTTP), so slow clients from one
 * address cannot hold every socket. Behind a reverse proxy every client shares the proxy's
 * address: raise the cap or set 0 there. Refusals are logged at most once per address every 10 s.
 */
export function limitConnectionsPerClient(server: Server, maxPerClient: number, logger: Logger): void {
  if (maxPerClient <= 0) return;
  const open = new Map<string, number>();
  const lastWarnedAt = new Map<string, number>();
  server.on("connection", (socket: Socket) => {
    const address = socket.remoteAddress?.replace(/^::ffff:/, "");
    if (address === undefined) return;
    const count = open.get(address) ?? 0;
    if (count >= maxPerClient) {
      socket.destroy();
      const now = Date.now();
      if (now - (lastWarnedAt.get(address) ?? 0) >= 10_000) {
        lastWarnedAt.set(address, now);
        logger.warn({ event: "connection.refused", remoteAddress: address, open: count, maxConnectionsPerClient: maxPerClient }, "too many connections from one address: closed");
      }
      return;
    }
    open.set(address, count + 1);
    socket.once("close", () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left > 0) open.set(address, left);
      else {
        open.delete(address);
        lastWarnedAt.delete(address);
      }
    });
  });
}
