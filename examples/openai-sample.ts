/**
 * The openai SDK against phiserve's OpenAI-compatible routes.
 *   ENDPOINT=http://127.0.0.1:8080 KEY=... npx tsx examples/openai-sample.ts
 */
import OpenAI from "openai";

const openai = new OpenAI({ baseURL: `${process.env.ENDPOINT ?? "http://localhost:8080"}/v1`, apiKey: process.env.KEY ?? "test-key" });

const models = await openai.models.list();
const model = models.data[0]!.id;
const completion = await openai.chat.completions.create({ model, messages: [{ role: "user", content: "Say hi" }], max_tokens: 16 });
console.log(completion.choices[0]!.message.content, completion.usage?.total_tokens);

const stream = await openai.chat.completions.create({ model, messages: [{ role: "user", content: "Count to 3" }], max_tokens: 16, stream: true });
for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? "");
process.stdout.write("\n");
