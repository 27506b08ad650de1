/**
 * The closed catalog of errors phiserve reports. Code that fails throws an `AppError`;
 * only `errors/http-mapping.ts` decides what status, wire code and headers that becomes.
 */

export type AppErrorCode =
  | "INVALID_REQUEST"
  | "UNSUPPORTED_PARAMETER"
  | "PARAMETER_NOT_SUPPORTED"
  | "CONTEXT_LENGTH_EXCEEDED"
  | "INVALID_IMAGE"
  | "CONTENT_FILTERED"
  | "UNAUTHENTICATED"
  | "FORBIDDEN"
  | "ADMIN_REQUIRED"
  | "ROUTE_NOT_FOUND"
  | "KEY_NOT_FOUND"
  | "MODEL_NOT_FOUND"
  | "METHOD_NOT_ALLOWED"
  | "REQUEST_TIMEOUT"
  | "PAYLOAD_TOO_LARGE"
  | "ENGINE_UNAVAILABLE"
  | "RATE_LIMITED"
  | "OVERLOADED"
  | "GENERATION_TIMEOUT"
  | "AUTH_UNAVAILABLE"
  | "DEPLOYMENT_BUSY"
  | "CLIENT_CLOSED"
  | "INTERNAL";

/** Every code, in catalog order; docs/ERRORS.md is kept in sync with this list by a test. */
export const APP_ERROR_CODES: readonly AppErrorCode[] = [
  "INVALID_REQUEST",
  "UNSUPPORTED_PARAMETER",
  "PARAMETER_NOT_SUPPORTED",
  "CONTEXT_LENGTH_EXCEEDED",
  "INVALID_IMAGE",
  "CONTENT_FILTERED",
  "UNAUTHENTICATED",
  "FORBIDDEN",
  "ADMIN_REQUIRED",
  "ROUTE_NOT_FOUND",
  "KEY_NOT_FOUND",
  "MODEL_NOT_FOUND",
  "METHOD_NOT_ALLOWED",
  "REQUEST_TIMEOUT",
  "PAYLOAD_TOO_LARGE",
  "ENGINE_UNAVAILABLE",
  "RATE_LIMITED",
  "OVERLOADED",
  "GENERATION_TIMEOUT",
  "AUTH_UNAVAILABLE",
  "DEPLOYMENT_BUSY",
  "CLIENT_CLOSED",
  "INTERNAL",
];

/** A pydantic-style validation item, as Azure's 422 bodies carry them (`loc` starts with "body"). */
export interface ValidationDetail {
  type: string;
  loc: (string | number)[];
  msg: string;
  input?: unknown;
  ctx?: Record<string, unknown>;
}

export interface AppErrorOptions {
  /** The request field at fault, e.g. "messages" or "temperature". */
  param?: string | undefined;
  details?: ValidationDetail[] | undefined;
  /** Seconds a client should wait before retrying (503/429). */
  retryAfterSeconds?: number | undefined;
  /** Informational headers that belong with this error (e.g. the rate-limit state on a 429). */
  headers?: Record<string, string> | undefined;
  /** Azure's `innererror` object (content filtering: `{code: "ResponsibleAIPolicyViolation", content_filter_result}`). */
  innerError?: Record<string, unknown> | undefined;
  cause?: unknown | undefined;
}

export class AppError extends Error {
  readonly code: AppErrorCode;
  readonly param: string | undefined;
  readonly details: ValidationDetail[] | undefined;
  readonly retryAfterSeconds: number | undefined;
  readonly headers: Record<string, string> | undefined;
  readonly innerError: Record<string, unknown> | undefined;

  constructor(code: AppErrorCode, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AppError";
    this.code = code;
    this.param = options.param;
    this.details = options.details;
    this.innerError = options.innerError;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.headers = options.headers;
  }
}
