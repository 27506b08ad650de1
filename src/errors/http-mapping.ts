import { AppError, type AppErrorCode } from "./app-error.ts";

/** How one error code looks on the wire. */
interface HttpShape {
  status: number;
  /** `error.code` and the `x-ms-error-code` header. */
  wireCode: string;
  /** OpenAI-style `error.type`. */
  type: string;
}

const HTTP_SHAPES: Record<AppErrorCode, HttpShape> = {
  INVALID_REQUEST: { status: 422, wireCode: "invalid_request", type: "invalid_request_error" },
  UNSUPPORTED_PARAMETER: { status: 400, wireCode: "unsupported_parameter", type: "invalid_request_error" },
  PARAMETER_NOT_SUPPORTED: { status: 422, wireCode: "parameter_not_supported", type: "invalid_request_error" },
  CONTEXT_LENGTH_EXCEEDED: { status: 400, wireCode: "context_length_exceeded", type: "invalid_request_error" },
  INVALID_IMAGE: { status: 400, wireCode: "invalid_image", type: "invalid_request_error" },
  // Azure's own body: `type` null, `param` "prompt", and an `innererror` (docs/SAFETY.md "Blocked prompts").
  CONTENT_FILTERED: { status: 400, wireCode: "content_filter", type: "invalid_request_error" },
  UNAUTHENTICATED: { status: 401, wireCode: "invalid_api_key", type: "authentication_error" },
  FORBIDDEN: { status: 403, wireCode: "permission_denied", type: "permission_error" },
  // The admin API's own shapes (docs/ADMIN-API.md "Errors").
  ADMIN_REQUIRED: { status: 403, wireCode: "admin_required", type: "permission_error" },
  ROUTE_NOT_FOUND: { status: 404, wireCode: "not_found", type: "invalid_request_error" },
  KEY_NOT_FOUND: { status: 404, wireCode: "key_not_found", type: "invalid_request_error" },
  MODEL_NOT_FOUND: { status: 404, wireCode: "model_not_found", type: "invalid_request_error" },
  // With the `allow` header the thrower sets (RFC 9110, section 15.5.6).
  METHOD_NOT_ALLOWED: { status: 405, wireCode: "method_not_allowed", type: "invalid_request_error" },
  // Written by the transport (src/http/transport-limits.ts) when a request's headers and body do not arrive in time.
  REQUEST_TIMEOUT: { status: 408, wireCode: "request_timeout", type: "invalid_request_error" },
  PAYLOAD_TOO_LARGE: { status: 413, wireCode: "payload_too_large", type: "invalid_request_error" },
  ENGINE_UNAVAILABLE: { status: 503, wireCode: "engine_unavailable", type: "unavailable_error" },
  // Azure's own 429 body uses the code "429" (docs/AZURE-API.md "Errors").
  RATE_LIMITED: { status: 429, wireCode: "429", type: "rate_limit_error" },
  OVERLOADED: { status: 503, wireCode: "overloaded", type: "unavailable_error" },
  GENERATION_TIMEOUT: { status: 504, wireCode: "timeout", type: "timeout_error" },
  AUTH_UNAVAILABLE: { status: 503, wireCode: "auth_unavailable", type: "unavailable_error" },
  // 503 with retry-after, not 409: clients retry a 503 once the deployment's requests have finished.
  DEPLOYMENT_BUSY: { status: 503, wireCode: "deployment_busy", type: "unavailable_error" },
  // Never sent (the client is gone): the status usage records and logs carry, as nginx's 499.
  CLIENT_CLOSED: { status: 499, wireCode: "client_closed", type: "client_closed" },
  INTERNAL: { status: 500, wireCode: "internal_error", type: "server_error" },
};

/** The response an error becomes: status, headers and JSON body. */
export interface HttpErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
}

/**
 * The one place where errors become HTTP. The envelope `{"error":{code,message,type,param,status}}`
 * parses in the Azure clients (code/message) and the openai SDK (message/type/param/code); a few
 * cases add the top-level fields the live Azure service sends (docs/AZURE-API.md "Errors").
 */
export function toHttpError(error: unknown): HttpErrorResponse {
  const appError = error instanceof AppError ? error : new AppError("INTERNAL", "The server had an error processing the request.");
  const shape = HTTP_SHAPES[appError.code];
  const headers: Record<string, string> = { ...appError.headers, "x-ms-error-code": shape.wireCode };
  const inner: Record<string, unknown> = {
    code: shape.wireCode,
    message: appError.message,
    type: shape.type,
    param: appError.param ?? null,
    status: shape.status,
  };
  if (appError.details) inner.details = appError.details;
  if (appError.code === "CONTENT_FILTERED") inner.type = null;
  if (appError.innerError) inner.innererror = appError.innerError;
  const body: Record<string, unknown> = { error: inner };
  if (appError.code === "UNSUPPORTED_PARAMETER") body.detail = appError.message; // Azure's own 400 body
  if (appError.code === "UNAUTHENTICATED") {
    headers["www-authenticate"] = "Bearer";
    body.statusCode = 401; // the serverless service's shape: {"statusCode":401,"message":…}
    body.message = appError.message;
  }
  if (appError.retryAfterSeconds !== undefined) {
    headers["retry-after"] = String(Math.max(0, Math.ceil(appError.retryAfterSeconds)));
    headers["retry-after-ms"] = String(Math.max(0, Math.round(appError.retryAfterSeconds * 1000)));
  }
  return { status: shape.status, headers, body };
}

/** The wire code of an error code (`error.code`, `x-ms-error-code`; traces' `error.type`). */
export function wireCodeOf(code: AppErrorCode): string {
  return HTTP_SHAPES[code].wireCode;
}

/** Status code for an error code (for logs and docs). */
export function statusOf(code: AppErrorCode): number {
  return HTTP_SHAPES[code].status;
}
