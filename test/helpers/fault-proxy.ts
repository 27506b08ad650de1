/**
 * A fault-injecting TCP proxy for tests (node:net): it forwards a loopback port to a target and,
 * on command, fails the way real upstreams fail:
 * - `refuse`: the port is closed (connection refused), open connections are reset;
 * - `reset`: each new request is read, counted, then its connection is reset (ECONNRESET before any byte back);
 * - `resetMidStream(n)`: a connection is reset once it has carried `n` response bytes since the mode was set;
 * - `stall`: requests are read and counted, never forwarded, never answered;
 * - `pass`: plain forwarding.
 * It counts the HTTP requests it saw by their request line (`POST /v1/chat/completions`), so a test
 * can tell which replica a request reached, or that none did.
 */
import { createServer, connect, type Server, type Socket } from "node:net";
import { once } from "node:events";

/** How long a mid-stream reset waits after the last bytes it lets through were written. */
const RESET_AFTER_WRITE_MS = 200;

export type FaultMode = { kind: "pass" } | { kind: "refuse" } | { kind: "reset" } | { kind: "stall" } | { kind: "reset-mid-stream"; afterBytes: number };

export class FaultProxy {
  private server: Server | undefined;
  private mode: FaultMode = { kind: "pass" };
  private epoch = 0;
  private readonly sockets = new Set<Socket>();
  /** Request lines seen (`POST /v1/chat/completions`), in order, whatever became of them. */
  readonly requests: string[] = [];
  port = 0;

  constructor(private targetPort: number, private readonly host = "127.0.0.1") {}

  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  /** How many chat completion requests reached the proxy. */
  chatRequests(): number {
    return this.requests.filter((r) => r.startsWith("POST ") && r.includes("/chat/completions")).length;
  }

  async start(): Promise<void> {
    const server = createServer((client) => this.accept(client));
    server.listen(this.port, this.host);
    await once(server, "listening");
    const address = server.address();
    if (typeof address === "object" && address) this.port = address.port;
    this.server = server;
  }

  /** Forwards to another target from now on (an upstream restarted on a new port). */
  retarget(port: number): void {
    this.targetPort = port;
  }

  async set(mode: FaultMode): Promise<void> {
    this.epoch += 1;
    const wasRefusing = this.mode.kind === "refuse";
    this.mode = mode;
    if (mode.kind === "refuse" && this.server) {
      const server = this.server;
      this.server = undefined;
      for (const socket of this.sockets) socket.resetAndDestroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    } else if (wasRefusing && !this.server) await this.start();
    if (mode.kind === "reset") for (const socket of this.sockets) socket.resetAndDestroy();
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    socket.on("error", () => {});
  }

  private accept(client: Socket): void {
    this.track(client);
    const upstream = connect(this.targetPort, this.host);
    this.track(upstream);
    let epoch = this.epoch;
    let carried = 0;
    const resetBoth = () => {
      client.resetAndDestroy();
      upstream.destroy();
    };
    client.on("data", (data: Buffer) => {
      const line = /^(GET|POST|PUT|DELETE|HEAD) (\S+)/.exec(data.toString("latin1", 0, Math.min(data.length, 256)));
      if (line) this.requests.push(`${line[1]} ${line[2]}`);
      const kind = this.mode.kind;
      if (kind === "reset") return resetBoth();
      if (kind === "stall") return;
      upstream.write(data);
    });
    upstream.on("data", (data: Buffer) => {
      const mode = this.mode;
      if (mode.kind === "reset-mid-stream") {
        if (epoch !== this.epoch) {
          epoch = this.epoch;
          carried = 0;
        }
        if (carried > mode.afterBytes) return; // cut: the reset is on its way
        carried += data.length;
        if (carried > mode.afterBytes) {
          // What fits below the threshold still goes out, so the client sees a stream start, then the reset. The
          // reset waits a moment: an RST that overtakes bytes the receiver has not read yet throws them away (seen
          // under load: the gateway never got the content it was to pass on).
          const keep = data.length - (carried - mode.afterBytes);
          if (keep > 0) client.write(data.subarray(0, keep), () => setTimeout(resetBoth, RESET_AFTER_WRITE_MS));
          else resetBoth();
          return;
        }
      }
      client.write(data);
    });
    client.on("end", () => upstream.end());
    upstream.on("end", () => client.end());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  }
}
