/** What tracing is configured with, and what starting it gives (shared by tracing.ts and tracing-sdk.ts). */
import type { Tracer } from "@opentelemetry/api";

/** Where spans go (OTLP/HTTP), from `--otlp-endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT`. */
export interface TracingSettings {
  /** The traces URL, e.g. `http://collector:4318/v1/traces`. */
  tracesUrl: string;
  /** `service.name` of the resource (default `phiserve`, or `OTEL_SERVICE_NAME`). */
  serviceName: string;
  /** Extra headers sent with every export (`OTEL_EXPORTER_OTLP_HEADERS`); never logged. */
  headers: Readonly<Record<string, string>>;
}

/** A tracer and the provider behind it; `close()` exports what is still buffered. */
export interface Tracing {
  tracer: Tracer;
  close(): Promise<void>;
}
