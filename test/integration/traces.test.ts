/**
 * GenAI traces (docs/ADMIN-API.md "Traces"): a real server on a tiny test model exports its spans over OTLP/HTTP
 * to a real receiver (an HTTP server here that decodes the exporter's OTLP JSON), after real chat requests: the
 * span names and GenAI attributes, time to first token, a refused request's error, and no message text.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { once } from "node:events";
import OpenAI from "openai";
import { ensureTestModel } from "../../src/model-factory/test-models.ts";
import { startServer } from "../helpers/start-server.ts";

/** One OTLP attribute value (JSON encoding of opentelemetry.proto.common.v1.AnyValue). */
interface AnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: number | string;
  doubleValue?: number;
  arrayValue?: { values?: AnyValue[] };
}
interface OtlpSpan {
  name: string;
  traceId: string;
  spanId: string;
  kind: number;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
  attributes?: { key: string; value: AnyValue }[];
  events?: { name: string; attributes?: { key: string; value: AnyValue }[] }[];
  status?: { code?: number; message?: string };
}
interface Received {
  contentType: string | undefined;
  path: string | undefined;
  body: string;
}

const PROMPT = "tell me about the secret lighthouse";
let receiver: Server;
let receiverUrl: string;
const received: Received[] = [];

before(async () => {
  receiver = createServer((request, response) => {
    let body = "";
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => (body += chunk));
    request.on("end", () => {
      received.push({ contentType: request.headers["content-type"], path: request.url, body });
      response.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  receiver.listen(0, "127.0.0.1");
  await once(receiver, "listening");
  const address = receiver.address();
  receiverUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
});
after(() => new Promise<void>((resolve) => receiver.close(() => resolve())));

const decode = (value: AnyValue): unknown => {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.arrayValue) return (value.arrayValue.values ?? []).map(decode);
  return undefined;
};
const attributesOf = (list: { key: string; value: AnyValue }[] | undefined): Record<string, unknown> =>
  Object.fromEntries((list ?? []).map((a) => [a.key, decode(a.value)]));

test("chat requests become GenAI spans exported over OTLP/HTTP: names, request and usage attributes, time to first token, errors, no prompt text", async () => {
  const server = await startServer([
    "--model", await ensureTestModel(), "--model-name", "phi-3.5-mini-instruct", "--deployment", "phi35",
    "--api-key", "trace-key-0123456789abcdef", "--rpm", "3", "--otlp-endpoint", receiverUrl,
  ], { timeoutMs: 240_000 });
  const usages: { id: string; prompt: number; completion: number }[] = [];
  try {
    const headers = { "content-type": "application/json", "api-key": "trace-key-0123456789abcdef" };
    const plain = await fetch(`${server.url}/chat/completions`, {
      method: "POST",
      headers,
      body: JSON.stringify({ messages: [{ role: "user", content: PROMPT }], max_tokens: 5, temperature: 0.5, top_p: 0.9 }),
    });
    assert.equal(plain.status, 200);
    const body = await plain.json();
    usages.push({ id: body.id, prompt: body.usage.prompt_tokens, completion: body.usage.completion_tokens });
    const openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "trace-key-0123456789abcdef", maxRetries: 0 });
    let streamedId = "";
    let streamedUsage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of await openai.chat.completions.create({ model: "phi35", messages: [{ role: "user", content: PROMPT }], max_tokens: 4, stream: true, stream_options: { include_usage: true } })) {
      streamedId = chunk.id;
      streamedUsage = chunk.usage ?? streamedUsage;
    }
    usages.push({ id: streamedId, prompt: streamedUsage!.prompt_tokens, completion: streamedUsage!.completion_tokens });
    await fetch(`${server.url}/chat/completions`, { method: "POST", headers, body: JSON.stringify({ messages: [{ role: "user", content: "x" }], max_tokens: 1 }) });
    const throttled = await fetch(`${server.url}/chat/completions`, { method: "POST", headers, body: JSON.stringify({ messages: [{ role: "user", content: "x" }], max_tokens: 1 }) });
    assert.equal(throttled.status, 429);
  } finally {
    await server.close(); // the batch processor exports what it holds at shutdown
  }
  assert.ok(received.length > 0, "the receiver got exports");
  for (const r of received) {
    assert.equal(r.path, "/v1/traces");
    assert.match(r.contentType ?? "", /^application\/json/);
    assert.ok(!r.body.includes("lighthouse"), "no prompt text in the spans");
  }
  const batches = received.map((r) => JSON.parse(r.body) as { resourceSpans: { resource?: { attributes?: { key: string; value: AnyValue }[] }; scopeSpans: { scope?: { name?: string }; spans: OtlpSpan[] }[] }[] });
  const resource = attributesOf(batches[0]!.resourceSpans[0]!.resource?.attributes);
  assert.equal(resource["service.name"], "phiserve");
  const spans = batches.flatMap((b) => b.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)));
  assert.equal(spans.length, 4, spans.map((s) => s.name).join(", "));

  const byId = (id: string) => spans.find((s) => attributesOf(s.attributes)["gen_ai.response.id"] === id);
  const first = byId(usages[0]!.id);
  assert.ok(first, "the first request's span");
  assert.equal(first.name, "chat phi35");
  assert.equal(first.kind, 1, "INTERNAL");
  const a = attributesOf(first.attributes);
  assert.equal(a["gen_ai.operation.name"], "chat");
  assert.equal(a["gen_ai.provider.name"], "azure.ai.inference");
  assert.equal(a["gen_ai.system"], "az.ai.inference");
  assert.equal(a["gen_ai.request.model"], "phi35");
  assert.equal(a["gen_ai.response.model"], "Phi-3.5-Mini-Instruct");
  assert.equal(a["phiserve.deployment"], "phi35");
  assert.equal(a["gen_ai.request.max_tokens"], 5);
  assert.equal(a["gen_ai.request.temperature"], 0.5);
  assert.equal(a["gen_ai.request.top_p"], 0.9);
  assert.equal(a["gen_ai.usage.input_tokens"], usages[0]!.prompt);
  assert.equal(a["gen_ai.usage.output_tokens"], usages[0]!.completion);
  assert.deepEqual(a["gen_ai.response.finish_reasons"], ["length"]);
  assert.equal(a["http.response.status_code"], 200);
  assert.equal(a["phiserve.stream"], false);
  const ttft = a["phiserve.time_to_first_token_ms"] as number;
  assert.ok(ttft > 0, "time to first token");
  const event = first.events?.find((e) => e.name === "gen_ai.first_token");
  assert.ok(event, "a first-token event");
  assert.equal(attributesOf(event.attributes)["phiserve.time_to_first_token_ms"], ttft);
  assert.ok(BigInt(first.endTimeUnixNano) > BigInt(first.startTimeUnixNano));
  assert.notEqual(first.status?.code, 2, "not an error");

  const streamed = byId(usages[1]!.id);
  assert.ok(streamed, "the streamed request's span");
  const s = attributesOf(streamed.attributes);
  assert.equal(s["phiserve.stream"], true);
  assert.equal(s["gen_ai.usage.output_tokens"], usages[1]!.completion);
  assert.equal(s["gen_ai.usage.input_tokens"], usages[1]!.prompt);
  assert.notEqual(streamed.traceId, first.traceId, "one trace per request");

  const refused = spans.find((x) => attributesOf(x.attributes)["http.response.status_code"] === 429);
  assert.ok(refused, "the throttled request's span");
  const r = attributesOf(refused.attributes);
  assert.equal(r["error.type"], "429");
  assert.equal(refused.status?.code, 2, "ERROR");
  assert.equal(r["gen_ai.usage.input_tokens"], 0);
});
