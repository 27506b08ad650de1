/**
 * OpenTelemetry spans for chat requests, following the GenAI semantic conventions (docs/ADMIN-API.md "Traces").
 * This module needs only `@opentelemetry/api`; the SDK and the OTLP exporter live in tracing-sdk.ts, which is
 * imported only when an endpoint is configured. Without one the use case holds no tracer at all, so a request
 * pays nothing: not even the API's no-op calls.
 */
import { SpanKind, SpanStatusCode, type Attributes, type Span, type Tracer } from "@opentelemetry/api";
import type { Logger } from "pino";
import { AppError } from "../errors/app-error.ts";
import { statusOf, wireCodeOf } from "../errors/http-mapping.ts";
import type { Tracing, TracingSettings } from "./tracing-settings.ts";

export type { Tracing, TracingSettings };

/** Loads the SDK and starts exporting (the only path that imports it). */
export async function createTracing(settings: TracingSettings, logger: Logger): Promise<Tracing> {
  const { startTracing } = await import("./tracing-sdk.ts");
  return startTracing(settings, logger);
}

/** GenAI conventions: the provider of the API phiserve speaks (Azure AI Model Inference). */
const PROVIDER_NAME = "azure.ai.inference";
/** The older attribute's value for the same provider (`gen_ai.system`, still read by many backends). */
const SYSTEM_NAME = "az.ai.inference";

/** What a chat span starts with: who the request is for. Never message text. */
export interface ChatSpanStart {
  /** The model the request named (body `model`), else the deployment's name. */
  requestModel: string;
  deployment: string;
  requestId: string;
}

/**
 * Starts the span `chat {model}` at the request's arrival. INTERNAL, as the conventions ask of a model that runs
 * in the same process as the span's emitter.
 */
export function startChatSpan(tracer: Tracer, request: ChatSpanStart, startTime: number): Span {
  const attributes: Attributes = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": PROVIDER_NAME,
    "gen_ai.system": SYSTEM_NAME,
    "gen_ai.request.model": request.requestModel,
    "phiserve.deployment": request.deployment,
    "phiserve.request_id": request.requestId,
  };
  return tracer.startSpan(`chat ${request.requestModel}`, { kind: SpanKind.INTERNAL, attributes, startTime });
}

/** The decoding parameters the request runs with (once its body was checked and defaults applied). */
export interface ChatSpanRequest {
  maxTokens: number | undefined;
  temperature: number;
  topP: number;
  choices: number;
  stream: boolean;
}

export function setChatSpanRequest(span: Span, request: ChatSpanRequest): void {
  const attributes: Attributes = {
    "gen_ai.request.temperature": request.temperature,
    "gen_ai.request.top_p": request.topP,
    "phiserve.stream": request.stream,
  };
  if (request.maxTokens !== undefined) attributes["gen_ai.request.max_tokens"] = request.maxTokens;
  if (request.choices !== 1) attributes["gen_ai.request.choice.count"] = request.choices;
  span.setAttributes(attributes);
}

/** Marks the first output: an event at that moment and the time to first token as an attribute. */
export function noteFirstToken(span: Span, ttftMs: number): void {
  span.addEvent("gen_ai.first_token", { "phiserve.time_to_first_token_ms": ttftMs });
  span.setAttribute("phiserve.time_to_first_token_ms", ttftMs);
}

/** What a request ended with. */
export interface ChatSpanResult {
  responseModel: string;
  responseId: string | undefined;
  inputTokens: number;
  outputTokens: number;
  finishReasons: readonly string[];
  /** The HTTP status the request answered (200 for streams, whatever happened after the headers). */
  status: number;
  /** Why it failed, when it did: its `error.type` is the catalog's wire code. */
  error: unknown;
}

export function endChatSpan(span: Span, result: ChatSpanResult): void {
  const attributes: Attributes = {
    "gen_ai.response.model": result.responseModel,
    "gen_ai.usage.input_tokens": result.inputTokens,
    "gen_ai.usage.output_tokens": result.outputTokens,
    "http.response.status_code": result.status,
  };
  if (result.responseId !== undefined) attributes["gen_ai.response.id"] = result.responseId;
  if (result.finishReasons.length > 0) attributes["gen_ai.response.finish_reasons"] = [...result.finishReasons];
  if (result.error !== undefined || result.status >= 400) {
    const errorType = result.error instanceof AppError ? wireCodeOf(result.error.code) : "internal_error";
    attributes["error.type"] = errorType;
    span.setStatus({ code: SpanStatusCode.ERROR, message: errorType });
  }
  span.setAttributes(attributes);
  span.end();
}

/** Ends the span of a request refused before it ran (no usage, no response). */
export function failChatSpan(span: Span, error: unknown, responseModel: string): void {
  const status = error instanceof AppError ? statusOf(error.code) : 500;
  endChatSpan(span, { responseModel, responseId: undefined, inputTokens: 0, outputTokens: 0, finishReasons: [], status, error });
}
