/**
 * The Azure AI Model Inference JavaScript sample (docs/AZURE-API.md "The JavaScript sample"),
 * unchanged but for `allowInsecureConnection` (needed for http:// endpoints), plus the
 * `presence_penalty: "0.1"` numeric string the Azure Phi docs' sample sends.
 *   ENDPOINT=http://127.0.0.1:8080 KEY=... npx tsx examples/azure-js-sample.ts
 */
import ModelClient, { isUnexpected } from "@azure-rest/ai-inference";
import { AzureKeyCredential } from "@azure/core-auth";
import { createSseStream } from "@azure/core-sse";
import type { IncomingMessage } from "node:http";

const client = ModelClient(process.env.ENDPOINT ?? "http://localhost:8080", // may include /models
  new AzureKeyCredential(process.env.KEY ?? "test-key"),
  { allowInsecureConnection: true /* needed for http:// */ });

async function main(): Promise<void> {
  const info = await client.path("/info").get();
  if (isUnexpected(info)) throw info.body.error;
  console.log(info.body.model_name, info.body.model_type);

  const res = await client.path("/chat/completions").post({
    headers: { "extra-parameters": "drop" },
    body: { messages: [{ role: "system", content: "Be terse." }, { role: "user", content: "Say hi" }],
            max_tokens: 32, temperature: 0, presence_penalty: "0.1" as unknown as number },
  });
  if (isUnexpected(res)) throw res.body.error;              // res.status is a string
  console.log(res.body.choices[0]!.message.content, res.body.usage.total_tokens);

  const stream = await client.path("/chat/completions")
    .post({ body: { messages: [{ role: "user", content: "Count to 3" }], stream: true, max_tokens: 16 } })
    .asNodeStream();
  if (stream.status !== "200" || !stream.body) throw new Error(`HTTP ${stream.status}`);
  for await (const ev of createSseStream(stream.body as IncomingMessage)) {
    if (ev.data === "[DONE]") break;
    for (const c of JSON.parse(ev.data).choices) process.stdout.write(c.delta?.content ?? "");
  }
  process.stdout.write("\n");
}
main().catch((e) => { console.error(e); process.exit(1); });
