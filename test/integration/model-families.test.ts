/**
 * Every test-model family served end to end: Phi-3.5-MoE (phimoe), Phi-4 (cl100k vocabulary,
 * ChatML-style template) and Phi-4-mini (o200k vocabulary, T8 template). Prompt token counts are
 * checked against js-tiktoken / llama-tokenizer-js, counted segment by segment between special
 * tokens, as llama.cpp tokenizes them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { getEncoding } from "js-tiktoken";
import llamaTokenizer from "llama-tokenizer-js";
import { ensureTestModel, type TestModelOptions } from "../../src/model-factory/test-models.ts";
import { startServer } from "../helpers/start-server.ts";

const cl100k = getEncoding("cl100k_base");
const o200k = getEncoding("o200k_base");

interface Case {
  family: TestModelOptions["family"];
  azureName: string;
  /** Expected prompt tokens for [system "Be brief.", user "Hello world"] (system sent as a user message of its own: Azure says these models don't support it). */
  promptTokens: number;
}

const cases: Case[] = [
  // "<|user|>\nBe brief.<|end|>\n<|user|>\nHello world<|end|>\n<|assistant|>\n" (the "\n" after Phi-3 specials is stripped by llama.cpp)
  { family: "phimoe", azureName: "Phi-3.5-MoE-Instruct", promptTokens: 5 + llamaTokenizer.encode("Be brief.", false, true).length + llamaTokenizer.encode("Hello world", false, true).length },
  // "<|im_start|>user<|im_sep|>Be brief.<|im_end|><|im_start|>user<|im_sep|>Hello world<|im_end|><|im_start|>assistant<|im_sep|>"
  { family: "phi4", azureName: "Phi-4", promptTokens: 8 + 2 * cl100k.encode("user").length + cl100k.encode("Be brief.").length + cl100k.encode("Hello world").length + cl100k.encode("assistant").length },
  // "<|user|>Be brief.<|end|><|user|>Hello world<|end|><|assistant|>"
  { family: "phi4-mini", azureName: "Phi-4-mini-instruct", promptTokens: 5 + o200k.encode("Be brief.").length + o200k.encode("Hello world").length },
];

for (const { family, azureName, promptTokens } of cases) {
  test(`${family}: served as ${azureName} with its template, exact prompt tokens, stream == non-stream`, async () => {
    const server = await startServer(["--model", await ensureTestModel({ family })]);
    try {
      const info = await (await fetch(`${server.url}/info`)).json();
      assert.equal(info.model_name, azureName);
      const body = { messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hello world" }], max_tokens: 12, temperature: 0 };
      const post = (extra: object) => fetch(`${server.url}/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...body, ...extra }) });
      const res = await (await post({})).json();
      assert.equal(res.model, azureName);
      assert.equal(res.usage.prompt_tokens, promptTokens);
      assert.ok(res.usage.completion_tokens >= 1);
      const streamed = (await (await post({ stream: true })).text())
        .split("\n")
        .filter((l) => l.startsWith("data: {"))
        .map((l) => JSON.parse(l.slice(6)).choices[0]?.delta?.content ?? "")
        .join("");
      assert.equal(streamed, res.choices[0].message.content);
    } finally {
      await server.close();
    }
  });
}
