/**
 * The HTTP path's own cost (figures, not tests): phiserve's full request path (auth, quota,
 * admission, validation, extra-parameters, template rendering, serialization) with the scripted
 * fake engine, against a bare fastify route validating the same request schema, loaded in turn
 * by autocannon running in its own process on the same machine (as a client would).
 *
 * A third server is the one the target is set against: the bare route answering with the
 * response headers the Azure contract makes phiserve send (x-request-id and four x-ratelimit-*
 * headers) and the same body, which alone cost a share of the throughput on a small machine.
 *
 * phiserve runs as shipped: the compiled JavaScript in dist/ (`npm run build` first), with the
 * production logger at its default level (pino's asynchronous destination; lines go to
 * /dev/null here unless --log-file names a file).
 *
 *   npm run build && npm run bench:http -- [--seconds 10] [--connections 10] [--rounds 2] [--log-file PATH]
 */
import { parseArgs } from "node:util";
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { promisify } from "node:util";
import Fastify, { type FastifyInstance } from "fastify";
import { existsSync } from "node:fs";
import { ChatCompletionsRequestSchema } from "../src/protocol/chat-completions.schema.ts";
import type { ServeConfig } from "../src/config/serve-config.ts";
import { fakeServeConfig } from "../test/helpers/fake-config.ts";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    connections: { type: "string", default: "10" },
    rounds: { type: "string", default: "2" },
    "log-file": { type: "string", default: "/dev/null" },
  },
});

/** phiserve's compiled modules (what `npm start` runs), typed by their sources. */
async function loadDist() {
  const dist = new URL("../dist/", import.meta.url);
  if (!existsSync(new URL("app.js", dist))) throw new Error("dist/ is not built: run `npm run build` first");
  const load = (path: string) => import(new URL(path, dist).href);
  return {
    app: (await load("app.js")) as typeof import("../src/app.ts"),
    fake: (await load("engine/fake/fake-engine-factory.js")) as typeof import("../src/engine/fake/fake-engine-factory.ts"),
    logger: (await load("observability/logger.js")) as typeof import("../src/observability/logger.ts"),
  };
}
const KEY = "bench-key-0123456789abcdef";
const body = JSON.stringify({ messages: [{ role: "system", content: "Be terse." }, { role: "user", content: "Say hi" }], max_tokens: 2, temperature: 0 });
const AUTOCANNON = createRequire(import.meta.url).resolve("autocannon/autocannon.js");
const run = promisify(execFile);

/** One autocannon run in a child process; requests/s on average. */
async function load(url: string, seconds: number): Promise<number> {
  const { stdout } = await run(process.execPath, [
    AUTOCANNON, "--json", "-c", args.connections, "-d", String(seconds), "-m", "POST",
    "-H", "content-type=application/json", "-H", `api-key=${KEY}`, "-b", body, url,
  ], { maxBuffer: 16 * 1024 * 1024 });
  const result = JSON.parse(stdout) as { requests: { average: number }; non2xx: number; errors: number };
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${url}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return result.requests.average;
}

const STATIC_RESPONSE = {
  id: "0".repeat(32), object: "chat.completion", created: 0, model: "Phi-3.5-Mini-Instruct",
  choices: [{ index: 0, message: { role: "assistant", content: "Hello world", tool_calls: null }, finish_reason: "length", logprobs: null }],
  usage: { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 },
};

async function bareServer(withContractHeaders: boolean): Promise<{ app: FastifyInstance; url: string }> {
  const app = Fastify();
  app.post("/chat/completions", { schema: { body: ChatCompletionsRequestSchema } }, async (_request, reply) => {
    if (withContractHeaders) {
      reply.headers({
        "x-request-id": crypto.randomUUID(),
        "x-ratelimit-limit-requests": "1000000000", "x-ratelimit-remaining-requests": "999999999",
        "x-ratelimit-limit-tokens": "1000000000000", "x-ratelimit-remaining-tokens": "999999999999",
      });
    }
    return STATIC_RESPONSE;
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  return { app, url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/chat/completions` };
}

async function main(): Promise<void> {
  const seconds = Number(args.seconds);
  const config: ServeConfig = fakeServeConfig({ apiKeys: [KEY] }, { parallel: 64, maxQueue: 1024, quota: { requestsPerMinute: 1e9, tokensPerMinute: 1e12 } });
  const { app, fake, logger } = await loadDist();
  const phiserve = await app.createApp(config, logger.createLogger({ level: "info", destination: args["log-file"] }), {
    engines: fake.createFakeEngineFactory({ tokens: ["Hello", " world"], yieldBetweenTokens: false }),
  });
  const targets = [
    { name: "bare fastify route", ...(await bareServer(false)) },
    { name: "bare + contract headers", ...(await bareServer(true)) },
    { name: "phiserve (fake engine)", app: phiserve.http, url: `${await phiserve.start()}/chat/completions` },
  ];
  for (const target of targets) await load(target.url, Math.min(3, seconds)); // warm-up (JIT) of each
  const rps = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  for (let round = 0; round < Number(args.rounds); round++) {
    for (const target of targets) rps.get(target.name)!.push(await load(target.url, seconds));
  }
  for (const target of targets.slice(0, 2)) await target.app.close();
  await phiserve.close();
  const mean = (name: string) => rps.get(name)!.reduce((a, b) => a + b, 0) / rps.get(name)!.length;
  const report = {
    seconds, connections: Number(args.connections), rounds: Number(args.rounds),
    requestsPerSecond: Object.fromEntries([...rps].map(([name, values]) => [name, values.map(Math.round)])),
    ratio: mean("phiserve (fake engine)") / mean("bare fastify route"),
    ratioToBareWithContractHeaders: mean("phiserve (fake engine)") / mean("bare + contract headers"),
  };
  const lines = targets.map((t) => `${t.name.padEnd(26)} ${mean(t.name).toFixed(0).padStart(7)} req/s  (${rps.get(t.name)!.map((v) => v.toFixed(0)).join(", ")})`);
  process.stdout.write(`${lines.join("\n")}\nratio (phiserve / bare)                   ${report.ratio.toFixed(3)}\nratio (phiserve / bare + headers)         ${report.ratioToBareWithContractHeaders.toFixed(3)}\n${JSON.stringify(report)}\n`);
}

await main();
