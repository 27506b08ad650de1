/**
 * Vision end to end: a real phiserve process serving the generated Phi-3-vision test model (three
 * seeded ONNX graphs, the real Phi-3-vision tokenizer) through onnxruntime-node, driven by the
 * official Azure JS client. Random weights: assertions are on mechanics (exact token counts, rules,
 * errors, determinism), never on wording. Counts: docs/VISION.md "Image token formula", "Prompt format".
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { IncomingMessage } from "node:http";
import sharp from "sharp";
import ModelClient, { isUnexpected, type ModelClient as Client } from "@azure-rest/ai-inference";
import { AzureKeyCredential } from "@azure/core-auth";
import { createSseStream } from "@azure/core-sse";
import { ensurePhi3vTestModel } from "../../src/model-factory/phi3v-test-model.ts";
import { startServer, type RunningServer } from "../helpers/start-server.ts";

const KEY = "vision-key-0123456789";
/** The Azure docs' Phi-3-vision sample question (Azure reports 2380 prompt tokens with its 1900×1069 chart). */
const QUESTION = "Which peculiar conclusion about LLMs and SLMs can be extracted from the following chart?";
/** Image tokens of a 1900×1069 (2353) and a 1069×1900 (2377) image at num_crops 16. */
const LANDSCAPE_TOKENS = 2353;
const PORTRAIT_TOKENS = 2377;
/** `<s><|user|>▁\n` + the question's 19 tokens + `<|end|>▁\n<|assistant|>`: 27 (the tag eats its newline). */
const SAMPLE_TEXT_TOKENS = 27;
const MAX_IMAGE_BYTES = 600_000;

let server: RunningServer;
let client: Client;
let landscape: string;
let portrait: string;
let imageHost: Server | undefined;

/** A deterministic chart-like picture: gradients and bars, so the JPEG is realistic in size. */
async function chartJpeg(width: number, height: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const bar = Math.floor(x / 97) % 3;
      raw[i] = (x * 255) / width;
      raw[i + 1] = (y * 255) / height;
      raw[i + 2] = bar * 100 + ((x ^ y) & 15);
    }
  }
  return sharp(raw, { raw: { width, height, channels: 3 } }).jpeg({ quality: 85 }).toBuffer();
}

const dataUrl = (bytes: Buffer, mime = "image/jpeg") => `data:${mime};base64,${bytes.toString("base64")}`;
const imagePart = (url: string) => ({ type: "image_url", image_url: { url } });
const textPart = (text: string) => ({ type: "text", text });

before(async () => {
  const [folder, a, b] = await Promise.all([ensurePhi3vTestModel(), chartJpeg(1900, 1069), chartJpeg(1069, 1900)]);
  landscape = dataUrl(a);
  portrait = dataUrl(b);
  server = await startServer([
    "--model", folder,
    "--model-name", "phi-3-vision-128k-instruct",
    "--api-key", KEY,
    "--parallel", "2",
    "--max-image-bytes", String(MAX_IMAGE_BYTES),
    "--allow-private-image-urls",
  ], { timeoutMs: 120_000 });
  client = ModelClient(server.url, new AzureKeyCredential(KEY), { allowInsecureConnection: true, retryOptions: { maxRetries: 0 } });
});
after(async () => {
  await server?.close();
  imageHost?.close();
});

async function complete(body: Record<string, unknown>) {
  return client.path("/chat/completions").post({ body: body as never });
}

async function usageOf(body: Record<string, unknown>): Promise<{ prompt_tokens: number; completion_tokens: number }> {
  const res = await complete({ max_tokens: 2, temperature: 0, ...body });
  if (isUnexpected(res)) throw new Error(`${res.status} ${JSON.stringify(res.body)}`);
  return res.body.usage;
}

async function refusal(body: Record<string, unknown>): Promise<{ status: string; code: string; message: string; type: string | undefined; loc: unknown }> {
  const res = await complete({ max_tokens: 2, ...body });
  const error = (res.body as { error?: { code: string; message: string; details?: { type: string; loc: unknown }[] } }).error;
  assert.ok(error, `expected an error, got ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
  return { status: res.status, code: error.code, message: error.message, type: error.details?.[0]?.type, loc: error.details?.[0]?.loc };
}

test("/info names the vision model", async () => {
  const res = await client.path("/info").get();
  if (isUnexpected(res)) throw res.body.error;
  assert.equal(res.body.model_name, "Phi-3-vision-128k-Instruct");
});

test("the Azure docs' vision sample: 2380 prompt tokens, as Azure reports", async () => {
  const res = await complete({
    messages: [{ role: "user", content: [textPart(QUESTION), imagePart(landscape)] }],
    temperature: 0,
    top_p: 1,
    max_tokens: 4,
  });
  if (isUnexpected(res)) throw res.body.error;
  assert.equal(res.body.usage.prompt_tokens, 2380);
  assert.equal(res.body.usage.prompt_tokens, LANDSCAPE_TOKENS + SAMPLE_TEXT_TOKENS);
  assert.equal(res.body.model, "Phi-3-vision-128k-Instruct");
  assert.ok(res.body.usage.completion_tokens >= 1 && res.body.usage.completion_tokens <= 4);
  // The request's log line says how long the image took, and carries neither the image nor the question.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const line = server.logs().split("\n").filter((l) => l.includes('"request.completed"') && l.includes('"promptTokens":2380')).at(-1);
  assert.ok(line, "no request.completed line");
  const logged = JSON.parse(line) as { image?: { decodeMs: number; preprocessMs: number; fetchMs: number } };
  assert.ok(logged.image && logged.image.decodeMs >= 0 && logged.image.preprocessMs >= 0 && logged.image.fetchMs === 0);
  assert.ok(!server.logs().includes("peculiar") && !server.logs().includes(landscape.slice(30, 60)));
});

test("a portrait image is transposed, not squeezed: 2377 image tokens", async () => {
  const usage = await usageOf({ messages: [{ role: "user", content: [imagePart(portrait), textPart(QUESTION)] }] });
  assert.equal(usage.prompt_tokens, PORTRAIT_TOKENS + SAMPLE_TEXT_TOKENS);
});

test("text-only requests work on a vision deployment", async () => {
  const usage = await usageOf({ messages: [{ role: "user", content: QUESTION }] });
  // Without the image the tag's tokens go, and the newline it ate is text again (`▁\n` before the question).
  const withImage = await usageOf({ messages: [{ role: "user", content: [imagePart(landscape), textPart(QUESTION)] }] });
  assert.ok(usage.prompt_tokens > 20 && usage.prompt_tokens < 40, String(usage.prompt_tokens));
  assert.equal(withImage.prompt_tokens - LANDSCAPE_TOKENS, SAMPLE_TEXT_TOKENS);
});

test("a system message is accepted (translated into a user turn)", async () => {
  const plain = await usageOf({ messages: [{ role: "user", content: [imagePart(landscape), textPart(QUESTION)] }] });
  const withSystem = await usageOf({ messages: [{ role: "system", content: "You are a helpful assistant." }, { role: "user", content: [imagePart(landscape), textPart(QUESTION)] }] });
  assert.ok(withSystem.prompt_tokens > plain.prompt_tokens);
});

test("more than one image in a turn → 400 invalid_image", async () => {
  const error = await refusal({ messages: [{ role: "user", content: [imagePart(landscape), imagePart(portrait), textPart("compare")] }] });
  assert.equal(error.status, "400");
  assert.equal(error.code, "invalid_image");
  assert.equal(error.type, "too_many_images");
  assert.match(error.message, /one image per turn/);
});

test("only the last image is kept in context: earlier turns' images are dropped", async () => {
  const history = (first: unknown[]) => [
    { role: "user", content: first },
    { role: "assistant", content: "A chart." },
    { role: "user", content: [imagePart(portrait), textPart("And this one?")] },
  ];
  const both = await usageOf({ messages: history([imagePart(landscape), textPart(QUESTION)]) });
  const textOnlyFirst = await usageOf({ messages: history([textPart(QUESTION)]) });
  assert.equal(both.prompt_tokens, textOnlyFirst.prompt_tokens);
  // …and what is left holds the portrait's tokens. With the tag the turn is `▁ \n`, 2377 image positions, `▁And ▁this
  // ▁one ?` (the tag eats its newline); without it, `▁ \n And ▁this ▁one ?`: the difference is the image's tokens.
  const noImages = await usageOf({ messages: history([textPart(QUESTION)]).map((m, i) => (i === 2 ? { role: "user", content: "And this one?" } : m)) });
  assert.equal(textOnlyFirst.prompt_tokens - noImages.prompt_tokens, PORTRAIT_TOKENS);
});

test("the image reaches the model: greedy output depends on it, and is reproducible", async () => {
  const ask = (url: string) =>
    client.path("/chat/completions").post({
      body: { messages: [{ role: "user", content: [imagePart(url), textPart("Describe.")] }], temperature: 0, max_tokens: 12, logprobs: true, top_logprobs: 3 } as never,
      headers: { "extra-parameters": "pass-through" },
    });
  const [a1, a2, b] = [await ask(landscape), await ask(landscape), await ask(portrait)];
  if (isUnexpected(a1) || isUnexpected(a2) || isUnexpected(b)) throw new Error("unexpected status");
  assert.deepEqual(a1.body.choices[0]?.message, a2.body.choices[0]?.message);
  const firstLogprob = (r: typeof a1) => (r.body.choices[0] as unknown as { logprobs: { content: { logprob: number }[] } }).logprobs.content[0]!.logprob;
  assert.notEqual(firstLogprob(a1), firstLogprob(b));
});

test("streaming with an image: chunks carry the text, the last one the exact usage", async () => {
  const body = { messages: [{ role: "user", content: [textPart(QUESTION), imagePart(landscape)] }], max_tokens: 6, temperature: 0, seed: 3 };
  const whole = await complete(body);
  if (isUnexpected(whole)) throw whole.body.error;
  const stream = await client.path("/chat/completions").post({ body: { ...body, stream: true } as never }).asNodeStream();
  assert.equal(stream.status, "200");
  let text = "";
  let last: { usage?: { prompt_tokens: number; completion_tokens: number } } | undefined;
  for await (const event of createSseStream(stream.body as IncomingMessage)) {
    if (event.data === "[DONE]") break;
    const chunk = JSON.parse(event.data);
    for (const choice of chunk.choices) text += choice.delta?.content ?? "";
    last = chunk;
  }
  assert.equal(text, whole.body.choices[0]?.message.content);
  assert.equal(last?.usage?.prompt_tokens, 2380);
  assert.equal(last?.usage?.completion_tokens, whole.body.usage.completion_tokens);
});

test("bad images → 400 naming the problem, and the server keeps serving", async () => {
  const jpeg = Buffer.from(landscape.slice(landscape.indexOf(",") + 1), "base64");
  const png = await sharp({ create: { width: 40, height: 30, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).png().toBuffer();
  // A decompression bomb: a small PNG file that decodes to 10000 × 10000 pixels.
  const bomb = await sharp({ create: { width: 10_000, height: 10_000, channels: 3, background: "white" } }).png({ compressionLevel: 9 }).toBuffer();
  const big = await sharp({ create: { width: 800, height: 800, channels: 3, background: "black", noise: { type: "gaussian", mean: 128, sigma: 60 } } }).png().toBuffer();
  assert.ok(big.length > MAX_IMAGE_BYTES && bomb.length < MAX_IMAGE_BYTES);
  const cases: [string, string, string][] = [
    ["corrupt bytes", dataUrl(Buffer.from("this is not an image at all, just text")), "unsupported_format"],
    ["truncated JPEG", dataUrl(jpeg.subarray(0, Math.floor(jpeg.length / 2))), "corrupt"],
    ["declared type ≠ bytes", dataUrl(png, "image/jpeg"), "mime_mismatch"],
    ["invalid base64", "data:image/png;base64,@@@not-base64@@@", "invalid_base64"],
    ["not base64 at all", "data:image/png,rawbytes", "invalid_data_url"],
    ["decompression bomb", dataUrl(bomb, "image/png"), "too_many_pixels"],
    ["oversized image", dataUrl(big, "image/png"), "too_large"],
    ["an http URL (allowed here, but nothing listens)", "http://127.0.0.1:9/x.png", "fetch_failed"],
    ["another scheme", "file:///etc/passwd", "invalid_image_url"],
  ];
  for (const [name, url, type] of cases) {
    const error = await refusal({ messages: [{ role: "user", content: [textPart("What is it?"), imagePart(url)] }] });
    assert.equal(error.status, "400", name);
    assert.equal(error.code, "invalid_image", name);
    assert.equal(error.type, type, `${name}: ${error.message}`);
    assert.deepEqual(error.loc, ["body", "messages", 0, "content", 1, "image_url", "url"], name);
    // The message names the problem without echoing the image data back.
    const data = url.slice(url.indexOf(",") + 1);
    assert.ok(error.message.length > 10 && (data.length < 8 || !error.message.includes(data.slice(0, 8))), `${name}: ${error.message}`);
  }
  const ok = await usageOf({ messages: [{ role: "user", content: [imagePart(landscape), textPart(QUESTION)] }] });
  assert.equal(ok.prompt_tokens, 2380);
  const health = await fetch(`${server.url}/health`);
  assert.equal(health.status, 200);
});

test("an http(s) image URL is fetched where allowed, and counts the same as inline", async () => {
  const bytes = Buffer.from(landscape.slice(landscape.indexOf(",") + 1), "base64");
  imageHost = createServer((req, res) => {
    res.writeHead(200, { "content-type": "image/jpeg", "content-length": bytes.length });
    res.end(bytes);
  });
  await new Promise<void>((resolve) => imageHost!.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(imageHost.address() as AddressInfo).port}/chart.jpg`;
  const usage = await usageOf({ messages: [{ role: "user", content: [textPart(QUESTION), imagePart(url)] }] });
  assert.equal(usage.prompt_tokens, 2380);
});
