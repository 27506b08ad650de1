import { test } from "node:test";
import assert from "node:assert/strict";
import { CHAT_TEMPLATES, isChatTemplateId, renderChatTemplate, templateSupportsSystemRole } from "./chat-templates.ts";
import { AZURE_SERVERLESS_QUOTA, CATALOG, DEFAULT_MODEL_ID, findCatalogModel } from "./phi-models.ts";

test("catalog has the twelve requested models", () => {
  assert.deepEqual(
    CATALOG.map((m) => m.id),
    [
      "phi-3-mini-4k-instruct",
      "phi-3-mini-128k-instruct",
      "phi-3-small-8k-instruct",
      "phi-3-small-128k-instruct",
      "phi-3-medium-4k-instruct",
      "phi-3-medium-128k-instruct",
      "phi-3.5-mini-instruct",
      "phi-3.5-moe-instruct",
      "phi-3-vision-128k-instruct",
      "phi-3.5-vision-instruct",
      "phi-4",
      "phi-4-mini-instruct",
    ],
  );
});

test("ids and Azure names are unique (case-insensitively); ids are lower-case", () => {
  const ids = CATALOG.map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length);
  const names = CATALOG.map((m) => m.azureName.toLowerCase());
  assert.equal(new Set(names).size, names.length);
  for (const m of CATALOG) assert.equal(m.id, m.id.toLowerCase(), m.id);
  // id is the lower-cased Azure name for every entry (so either spelling finds it).
  for (const m of CATALOG) assert.equal(m.azureName.toLowerCase(), m.id, m.id);
});

test("Azure names documented as /info output are spelled exactly (docs/MODELS.md: Model table)", () => {
  assert.equal(findCatalogModel("phi-3.5-mini-instruct")?.azureName, "Phi-3.5-Mini-Instruct");
  assert.equal(findCatalogModel("phi-3-mini-4k-instruct")?.azureName, "Phi-3-mini-4k-Instruct");
  assert.equal(findCatalogModel("phi-3-vision-128k-instruct")?.azureName, "Phi-3-vision-128k-Instruct");
  assert.equal(findCatalogModel("phi-4")?.azureName, "Phi-4");
  assert.equal(findCatalogModel("phi-4-mini-instruct")?.azureName, "Phi-4-mini-instruct");
});

test("every chat template id exists and its template is consistent with the system-role facts", () => {
  for (const m of CATALOG) {
    assert.ok(isChatTemplateId(m.chatTemplate), `${m.id}: ${m.chatTemplate}`);
    assert.equal(typeof CHAT_TEMPLATES[m.chatTemplate], "string");
    // A model whose template drops system messages must have system translated (supportsSystemRole false).
    if (!templateSupportsSystemRole(CHAT_TEMPLATES[m.chatTemplate])) assert.equal(m.supportsSystemRole, false, m.id);
  }
});

test("quotas are Azure serverless 200000 TPM / 1000 RPM (docs/MODELS.md: Azure quota)", () => {
  assert.deepEqual(AZURE_SERVERLESS_QUOTA, { tokensPerMinute: 200_000, requestsPerMinute: 1_000 });
  for (const m of CATALOG) assert.deepEqual(m.quota, { tokensPerMinute: 200_000, requestsPerMinute: 1_000 }, m.id);
});

test("entries share no mutable state: each has its own stop-token list and quota", () => {
  const stopLists = new Set(CATALOG.map((m) => m.stopTokens));
  const quotas = new Set(CATALOG.map((m) => m.quota));
  assert.equal(stopLists.size, CATALOG.length);
  assert.equal(quotas.size, CATALOG.length);
  for (const m of CATALOG) assert.notEqual(m.quota, AZURE_SERVERLESS_QUOTA, m.id);
  assert.ok(Object.isFrozen(AZURE_SERVERLESS_QUOTA));
});

test("availability: unavailable entries have a reason; servable ones a download (a GGUF file or an ONNX folder)", () => {
  for (const m of CATALOG) {
    if (!m.engineAvailable) {
      assert.ok(m.unavailableReason !== undefined && m.unavailableReason.length > 20, m.id);
    } else {
      assert.equal(m.unavailableReason, undefined, m.id);
      if (m.engine === "llama-cpp") assert.ok(m.download !== undefined && m.downloadFolder === undefined, `${m.id} is a GGUF`);
      else assert.ok(m.engine === "onnx-vision" && m.downloadFolder !== undefined && m.download === undefined, `${m.id} is an ONNX folder`);
    }
    if (m.engine === "none") assert.equal(m.engineAvailable, false, m.id);
  }
  for (const id of ["phi-3-small-8k-instruct", "phi-3-small-128k-instruct"]) {
    const m = findCatalogModel(id);
    assert.equal(m?.engine, "none");
    assert.equal(m?.engineAvailable, false);
  }
  for (const id of ["phi-3-vision-128k-instruct", "phi-3.5-vision-instruct"]) {
    const m = findCatalogModel(id);
    assert.equal(m?.engine, "onnx-vision");
    assert.equal(m?.engineAvailable, true);
    assert.equal(m?.supportsVision, true);
    assert.equal(m?.numCrops, 16);
    assert.equal(m?.chatTemplate, "phi3-vision");
    assert.equal(m?.supportsSystemRole, false);
    assert.match(m?.downloadFolder?.revision ?? "", /^[0-9a-f]{40}$/);
    assert.equal(m?.downloadFolder?.path, "cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4");
  }
  for (const id of ["phi-3.5-moe-instruct", "phi-4-mini-instruct"]) assert.equal(findCatalogModel(id)?.engineAvailable, true);
});

test("downloads: Hugging Face resolve/main URLs, file name matches, sha256 only as full 64-hex", () => {
  for (const m of CATALOG) {
    const d = m.download;
    if (d === undefined) continue;
    assert.match(d.url, /^https:\/\/huggingface\.co\/[\w.-]+\/[\w.-]+\/resolve\/main\/[\w.-]+\.gguf$/, m.id);
    assert.ok(d.url.endsWith(`/${d.fileName}`), m.id);
    if (d.sha256 !== undefined) assert.match(d.sha256, /^[0-9a-f]{64}$/, m.id);
    assert.ok(d.source.length > 0, m.id);
  }
  const def = findCatalogModel(DEFAULT_MODEL_ID);
  assert.equal(
    def?.download?.url,
    "https://huggingface.co/bartowski/Phi-3.5-mini-instruct-GGUF/resolve/main/Phi-3.5-mini-instruct-Q4_K_M.gguf",
  );
  assert.equal(def?.download?.fileName, "Phi-3.5-mini-instruct-Q4_K_M.gguf");
  // Full digests (docs/MODELS.md: Downloads).
  assert.equal(
    findCatalogModel("phi-4-mini-instruct")?.download?.sha256,
    "01999f17c39cc3074afae5e9c539bc82d45f2dd7faa3917c66cbef76fce8c0c2",
  );
  assert.equal(
    findCatalogModel("phi-3.5-moe-instruct")?.download?.sha256,
    "43e91bb720869bd8a92d8eb86bc3c74a52c49cf61642ca709b3d7bb89644df36",
  );
  assert.equal(
    findCatalogModel("phi-4")?.download?.sha256,
    "009aba717c09d4a35890c7d35eb59d54e1dba884c7c526e7197d9c13ab5911d9",
  );
});

test("default model is Phi-3.5-mini, served by llama.cpp", () => {
  const m = findCatalogModel(DEFAULT_MODEL_ID);
  assert.ok(m);
  assert.equal(m.id, "phi-3.5-mini-instruct");
  assert.equal(m.engine, "llama-cpp");
  assert.equal(m.engineAvailable, true);
  assert.equal(m.chatTemplate, "phi3.5-mini");
  assert.equal(m.contextLength, 131072);
});

test("findCatalogModel is case-insensitive by id and Azure name", () => {
  assert.equal(findCatalogModel("PHI-3.5-MINI-INSTRUCT")?.id, "phi-3.5-mini-instruct");
  assert.equal(findCatalogModel("Phi-3.5-Mini-Instruct")?.id, "phi-3.5-mini-instruct");
  assert.equal(findCatalogModel("phi-4-mini-instruct")?.id, "phi-4-mini-instruct");
  assert.equal(findCatalogModel("Phi-4-Mini-Instruct")?.id, "phi-4-mini-instruct");
  assert.equal(findCatalogModel("Phi-3.5-MoE-Instruct")?.id, "phi-3.5-moe-instruct");
  assert.equal(findCatalogModel("  phi-4  ")?.id, "phi-4");
  assert.equal(findCatalogModel("microsoft/Phi-3.5-mini-instruct")?.id, "phi-3.5-mini-instruct");
  assert.equal(findCatalogModel("phi-5"), undefined);
  assert.equal(findCatalogModel(""), undefined);
  assert.equal(findCatalogModel("phi"), undefined);
});

test("context lengths per Azure docs (docs/MODELS.md: Model table)", () => {
  const ctx = Object.fromEntries(CATALOG.map((m) => [m.id, m.contextLength]));
  assert.deepEqual(ctx, {
    "phi-3-mini-4k-instruct": 4096,
    "phi-3-mini-128k-instruct": 131072,
    "phi-3-small-8k-instruct": 8192,
    "phi-3-small-128k-instruct": 131072,
    "phi-3-medium-4k-instruct": 4096,
    "phi-3-medium-128k-instruct": 131072,
    "phi-3.5-mini-instruct": 131072,
    "phi-3.5-moe-instruct": 131072,
    "phi-3-vision-128k-instruct": 131072,
    "phi-3.5-vision-instruct": 131072,
    "phi-4": 16384,
    "phi-4-mini-instruct": 131072,
  });
});

test("stop tokens, tokenizer and tools per family (docs/MODELS.md: Tokenizers and stop tokens, Tool calling)", () => {
  for (const m of CATALOG) {
    assert.ok(m.stopTokens.length > 0, m.id);
    if (m.tokenizer === "llama-spm-32064") {
      assert.deepEqual(new Set(m.stopTokens), new Set(["<|assistant|>", "<|end|>", "<|endoftext|>"]), m.id);
    }
    assert.equal(m.supportsTools, m.id === "phi-4-mini-instruct", m.id);
  }
  assert.deepEqual(findCatalogModel("phi-4")?.stopTokens, ["<|im_end|>", "<|endoftext|>"]);
  assert.deepEqual(findCatalogModel("phi-4-mini-instruct")?.stopTokens, ["<|end|>", "<|endoftext|>"]);
  assert.equal(findCatalogModel("phi-4-mini-instruct")?.tokenizer, "o200k-200064");
  assert.equal(findCatalogModel("phi-4")?.tokenizer, "cl100k-100352");
});

test("system messages follow Azure: every catalog model translates system into user (docs/MODELS.md: System messages)", () => {
  for (const m of CATALOG) assert.equal(m.supportsSystemRole, false, m.id);
});

test("catalog templates render the default model's prompt end to end", () => {
  const m = findCatalogModel(DEFAULT_MODEL_ID);
  assert.ok(m);
  const out = renderChatTemplate(CHAT_TEMPLATES[m.chatTemplate], [{ role: "user", content: "Hi" }], {
    bosToken: "<s>",
    eosToken: "<|endoftext|>",
  });
  assert.equal(out, "<|user|>\nHi<|end|>\n<|assistant|>\n");
});
