/**
 * The HTTP path's own cost (figures, not tests): phiserve's full request path (auth, admission,
 * validation, extra-parameters, template rendering, serialization) with the scripted fake engine,
 * against a bare fastify route validating the same request schema, each loaded with autocannon
 * in the same run on this machine.
 *   npm run bench:http -- [--seconds 10] [--connections 10]
 */
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import Fastify from "fastify";
import pino from "pino";
import { createApp } from "../src/app.ts";
import { FakeEngine } from "../src/engine/fake/fake-engine.ts";
import { ChatCompletionsRequestSchema } from "../src/protocol/chat-completions.schema.ts";
import type { ServeConfig } from "../src/config/serve-config.ts";
import { fakeServeConfig } from "../test/helpers/fake-config.ts";

const { values: args } = parseArgs({ options: { seconds: { type: "string", default: "10" }, connections: { type: "string", default: "10" } } });
const KEY = "bench-key-0123456789abcdef";
const body = JSON.stringify({ messages: [{ role: "system", content: "Be terse." }, { role: "user", content: "Say hi" }], max_tokens: 2, temperature: 0 });

async function load(url: string): Promise<number> {
  const result = await autocannon({
    url,
    method: "POST",
    connections: Number(args.connections),
    duration: Number(args.seconds),
    headers: { "content-type": "application/json", "api-key": KEY },
    body,
  });
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${url}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return result.requests.average;
}

async function main(): Promise<void> {
  const config: ServeConfig = fakeServeConfig({ apiKeys: [KEY] }, { parallel: 64, maxQueue: 1024, quota: { requestsPerMinute: 1e9, tokensPerMinute: 1e12 } });
  const app = await createApp(config, pino({ level: "silent" }), { engine: new FakeEngine({ tokens: ["Hello", " world"], yieldBetweenTokens: false }) });
  const phiserveUrl = `${await app.start()}/chat/completions`;

  const bare = Fastify();
  bare.post("/chat/completions", { schema: { body: ChatCompletionsRequestSchema } }, async () => ({
    id: "0".repeat(32), object: "chat.completion", created: 0, model: "Phi-3.5-Mini-Instruct",
    choices: [{ index: 0, message: { role: "assistant", content: "Hello world", tool_calls: null }, finish_reason: "length", logprobs: null }],
    usage: { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 },
  }));
  await bare.listen({ host: "127.0.0.1", port: 0 });
  const address = bare.server.address();
  const bareUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/chat/completions`;

  await load(bareUrl); // warm-up both
  await load(phiserveUrl);
  const bareRps = await load(bareUrl);
  const phiserveRps = await load(phiserveUrl);
  await bare.close();
  await app.close();
  const report = { seconds: Number(args.seconds), connections: Number(args.connections), bareFastifyRps: bareRps, phiserveRps, ratio: phiserveRps / bareRps };
  process.stdout.write(`bare fastify route   ${bareRps.toFixed(0)} req/s\nphiserve (fake eng.) ${phiserveRps.toFixed(0)} req/s\nratio                ${report.ratio.toFixed(3)}\n${JSON.stringify(report)}\n`);
}

await main();
