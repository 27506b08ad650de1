/**
 * A small client of the admin API (docs/ADMIN-API.md) for the command line's remote mode
 * (`phiserve keys … --server URL --admin-key KEY`, `phiserve usage --server URL`). It sends the admin key as a
 * bearer credential and turns the catalog's error envelope into an {@link AdminApiError}.
 */
import type { CreateKeyRequest, CreatedKeyView, KeyView, UsageReportView } from "../protocol/admin.schema.ts";

/** The server refused or failed a call; `message` names the status, the wire code and the server's message. */
export class AdminApiError extends Error {
  override readonly name = "AdminApiError";
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

export interface AdminClientOptions {
  /** The server's base URL, e.g. `http://127.0.0.1:8080`. */
  server: string;
  /** An admin credential: an `--admin-key`, a stored admin key, or a token with the admin role. */
  credential: string | undefined;
  fetchImpl?: typeof fetch | undefined;
  /** Per call; default 30 s. */
  timeoutMs?: number | undefined;
}

export class AdminClient {
  private readonly base: URL;
  private readonly fetch: typeof fetch;

  constructor(private readonly options: AdminClientOptions) {
    try {
      this.base = new URL(options.server.endsWith("/") ? options.server : `${options.server}/`);
    } catch {
      throw new AdminApiError(0, undefined, `--server '${options.server}' is not a URL: use http(s)://HOST:PORT`);
    }
    if (this.base.protocol !== "http:" && this.base.protocol !== "https:") throw new AdminApiError(0, undefined, `--server must be an http:// or https:// URL`);
    this.fetch = options.fetchImpl ?? globalThis.fetch;
  }

  createKey(input: CreateKeyRequest): Promise<CreatedKeyView> {
    return this.call("POST", "admin/keys", input);
  }

  async listKeys(): Promise<KeyView[]> {
    return (await this.call<{ data: KeyView[] }>("GET", "admin/keys")).data;
  }

  revokeKey(id: string): Promise<{ id: string; revoked: true; revokedAt: string | null }> {
    return this.call("DELETE", `admin/keys/${encodeURIComponent(id)}`);
  }

  usage(query: { since?: string | undefined; until?: string | undefined; by?: string | undefined }): Promise<UsageReportView> {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) if (value !== undefined) params.set(name, value);
    const search = params.size > 0 ? `?${params}` : "";
    return this.call("GET", `admin/usage${search}`);
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = new URL(path, this.base);
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.options.credential) headers.authorization = `Bearer ${this.options.credential}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    let response: Response;
    try {
      response = await this.fetch(url, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 30_000),
      });
    } catch (error) {
      const reason = error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error);
      throw new AdminApiError(0, undefined, `Cannot reach ${this.base.origin}: ${reason}`);
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!response.ok) {
      const error = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
      const code = typeof error?.code === "string" ? error.code : undefined;
      const message = typeof error?.message === "string" ? error.message : text.slice(0, 200);
      throw new AdminApiError(response.status, code, `${this.base.origin} answered ${response.status}${code ? ` ${code}` : ""}: ${message}`);
    }
    return parsed as T;
  }
}
