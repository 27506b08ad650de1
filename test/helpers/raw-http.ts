/**
 * HTTP/1.1 over a bare socket, for tests of what an HTTP client library hides: bodies that stall
 * or never end, uploads larger than the limit, connections held open. Reads responses with a
 * `content-length` (every phiserve answer outside streaming has one).
 */
import { connect, type Socket } from "node:net";
import { once } from "node:events";

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A connected socket that collects what it receives and how it ended. */
export class RawConnection {
  readonly socket: Socket;
  #received = Buffer.alloc(0);
  #waiters: (() => void)[] = [];
  /** The first socket error (ECONNRESET, EPIPE), if any. */
  error: NodeJS.ErrnoException | undefined;
  closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Buffer) => {
      this.#received = Buffer.concat([this.#received, chunk]);
      this.#wake();
    });
    socket.on("error", (error: NodeJS.ErrnoException) => (this.error ??= error));
    socket.on("close", () => {
      this.closed = true;
      this.#wake();
    });
  }

  static async open(url: string): Promise<RawConnection> {
    const { hostname, port } = new URL(url);
    const socket = connect(Number(port), hostname.replace(/^\[|\]$/g, ""));
    const connection = new RawConnection(socket);
    await once(socket, "connect");
    return connection;
  }

  /** Writes, waiting for the socket to drain; resolves false if the socket failed meanwhile. */
  async write(data: string | Buffer): Promise<boolean> {
    if (this.socket.destroyed) return false;
    if (this.socket.write(data)) return true;
    // events.once rejects on 'error' (EPIPE, ECONNRESET): kept in `error`, it means the write failed.
    await Promise.race([once(this.socket, "drain"), once(this.socket, "close")]).catch(() => undefined);
    return !this.socket.destroyed;
  }

  /** Resolves once the socket closed (either side). */
  async whenClosed(): Promise<void> {
    while (!this.closed) await this.#next();
  }

  /** The next complete response, or undefined if the socket closed before one arrived. */
  async readResponse(): Promise<RawResponse | undefined> {
    for (;;) {
      const parsed = parseResponse(this.#received);
      if (parsed) {
        this.#received = this.#received.subarray(parsed.length);
        return parsed.response;
      }
      if (this.closed) return undefined;
      await this.#next();
    }
  }

  /** Everything received and not yet read as a response. */
  unread(): string {
    return this.#received.toString("latin1");
  }

  close(): void {
    this.socket.destroy();
  }

  #next(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }
}

function parseResponse(data: Buffer): { response: RawResponse; length: number } | undefined {
  const end = data.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const [statusLine = "", ...lines] = data.subarray(0, end).toString("latin1").split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers["content-length"] ?? 0);
  if (data.length < end + 4 + length) return undefined;
  const status = Number(statusLine.split(" ")[1]);
  return { response: { status, headers, body: data.subarray(end + 4, end + 4 + length).toString("utf8") }, length: end + 4 + length };
}

/** Request head of a POST to `/chat/completions`, with `content-length: N` or chunked. */
export function postHead(body: { contentLength: number } | "chunked", path = "/chat/completions"): string {
  const framing = body === "chunked" ? "transfer-encoding: chunked" : `content-length: ${body.contentLength}`;
  return `POST ${path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n${framing}\r\n\r\n`;
}

/** One chunk of a chunked body. */
export function chunk(data: Buffer | string): Buffer {
  const bytes = typeof data === "string" ? Buffer.from(data) : data;
  return Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from("\r\n")]);
}
