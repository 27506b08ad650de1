/**
 * The OpenTelemetry SDK side of tracing: a tracer provider with a batch processor exporting OTLP/HTTP (JSON) to
 * the configured endpoint. Imported by tracing.ts only when an endpoint is configured (docs/ADMIN-API.md
 * "Traces"), so a server without one never loads the SDK.
 */
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import type { Logger } from "pino";
import type { Tracing, TracingSettings } from "./tracing-settings.ts";

/** Instrumentation scope of phiserve's spans. */
const SCOPE = "phiserve";

export function startTracing(settings: TracingSettings, logger: Logger): Tracing {
  const exporter = new OTLPTraceExporter({ url: settings.tracesUrl, headers: { ...settings.headers } });
  // Batched: spans leave the request path at once and are exported in the background (and on close).
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": settings.serviceName }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  // The URL only: headers may carry credentials.
  logger.info({ event: "tracing.enabled", tracesUrl: redactUrl(settings.tracesUrl), serviceName: settings.serviceName }, "exporting traces over OTLP/HTTP");
  return {
    tracer: provider.getTracer(SCOPE),
    async close() {
      await provider.shutdown().catch((error: unknown) => logger.warn({ event: "tracing.shutdown_failed", err: error }, "traces not exported at shutdown"));
    },
  };
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    parsed.search = "";
    return parsed.toString();
  } catch {
    return "(invalid URL)";
  }
}
