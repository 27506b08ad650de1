/**
 * "View code": the request the playground would send now, as runnable programs for the Azure JS client
 * (@azure-rest/ai-inference), Python azure-ai-inference, the openai SDK and curl. The key is never written
 * into a snippet: each reads AZURE_INFERENCE_CREDENTIAL, as the Azure docs' samples do (docs/PLAYGROUND.md
 * "View code").
 */
export interface SnippetInput {
  /** The server's origin, e.g. http://127.0.0.1:8080. */
  origin: string;
  /** The full body without `stream` (model, messages, parameters). */
  body: Record<string, unknown>;
  /** Whether Phi's extra parameters are in the body (`extra-parameters: pass-through`). */
  passThrough: boolean;
}

export type SnippetKind = "azure-js" | "python" | "openai-js" | "curl";

export const SNIPPET_LABELS: Record<SnippetKind, string> = {
  "azure-js": "Azure JS",
  python: "Python",
  "openai-js": "openai (JS)",
  curl: "curl",
};

const indent = (text: string, by: string): string => text.replace(/\n/g, `\n${by}`);

export function azureJs({ origin, body, passThrough }: SnippetInput): string {
  const insecure = origin.startsWith("http:");
  return `// npm install @azure-rest/ai-inference @azure/core-auth
// AZURE_INFERENCE_CREDENTIAL=<key> node chat.mjs
import ModelClient, { isUnexpected } from "@azure-rest/ai-inference";
import { AzureKeyCredential } from "@azure/core-auth";

const client = ModelClient(
  ${JSON.stringify(origin)},
  new AzureKeyCredential(process.env.AZURE_INFERENCE_CREDENTIAL ?? "no-key"),${insecure ? "\n  { allowInsecureConnection: true }, // plain http:// (the Azure client refuses it otherwise)" : ""}
);
const response = await client.path("/chat/completions").post({${passThrough ? `\n  headers: { "extra-parameters": "pass-through" },` : ""}
  body: ${indent(JSON.stringify(body, null, 2), "  ")},
});
if (isUnexpected(response)) throw response.body.error;
console.log(response.body.choices[0].message.content);
console.log(response.body.usage);
`;
}

/** JSON as a Python literal. */
export function toPython(value: unknown, pad = ""): string {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number" || typeof value === "string") return JSON.stringify(value);
  const next = `${pad}    `;
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    return `[\n${value.map((v) => `${next}${toPython(v, next)},`).join("\n")}\n${pad}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return "{}";
  return `{\n${entries.map(([k, v]) => `${next}${JSON.stringify(k)}: ${toPython(v, next)},`).join("\n")}\n${pad}}`;
}

const PHI_EXTRAS = ["logprobs", "top_logprobs", "n", "logit_bias"];

export function python({ origin, body }: SnippetInput): string {
  const { messages, response_format: responseFormat, ...rest } = body;
  const extras = Object.fromEntries(Object.entries(rest).filter(([k]) => PHI_EXTRAS.includes(k)));
  const kwargs = Object.entries(rest).filter(([k]) => !PHI_EXTRAS.includes(k));
  const lines = [`    messages=${toPython(messages, "    ")},`, ...kwargs.map(([k, v]) => `    ${k}=${toPython(v, "    ")},`)];
  let imports = "";
  const format = responseFormat as { type: string; json_schema?: { name: string; schema: unknown; strict?: boolean } } | undefined;
  if (format?.type === "json_object") lines.push(`    response_format="json_object",`);
  if (format?.type === "json_schema" && format.json_schema) {
    imports = "from azure.ai.inference.models import JsonSchemaFormat\n";
    const { name, schema, strict } = format.json_schema;
    lines.push(`    response_format=JsonSchemaFormat(\n        name=${JSON.stringify(name)},\n        schema=${toPython(schema, "        ")},\n        strict=${toPython(strict ?? false)},\n    ),`);
  }
  if (Object.keys(extras).length > 0) lines.push(`    model_extras=${toPython(extras, "    ")},  # sent with extra-parameters: pass-through`);
  return `# pip install azure-ai-inference
# AZURE_INFERENCE_CREDENTIAL=<key> python3 chat.py
import os
from azure.ai.inference import ChatCompletionsClient
${imports}from azure.core.credentials import AzureKeyCredential

client = ChatCompletionsClient(
    endpoint=${JSON.stringify(origin)},
    credential=AzureKeyCredential(os.environ.get("AZURE_INFERENCE_CREDENTIAL", "no-key")),
)
response = client.complete(
${lines.join("\n")}
)
print(response.choices[0].message.content)
print(response.usage)
`;
}

export function openaiJs({ origin, body }: SnippetInput): string {
  return `// npm install openai
// AZURE_INFERENCE_CREDENTIAL=<key> node chat.mjs
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: ${JSON.stringify(`${origin}/v1`)},
  apiKey: process.env.AZURE_INFERENCE_CREDENTIAL ?? "no-key",
});
const completion = await client.chat.completions.create(${indent(JSON.stringify(body, null, 2), "")});
console.log(completion.choices[0].message.content);
console.log(completion.usage);
`;
}

export function curl({ origin, body, passThrough }: SnippetInput): string {
  return `curl -sS ${origin}/chat/completions \\
  -H "api-key: $AZURE_INFERENCE_CREDENTIAL" \\
  -H "content-type: application/json" \\${passThrough ? `\n  -H "extra-parameters: pass-through" \\` : ""}
  -d @- <<'JSON'
${JSON.stringify(body, null, 2)}
JSON
`;
}

export function snippet(kind: SnippetKind, input: SnippetInput): string {
  switch (kind) {
    case "azure-js":
      return azureJs(input);
    case "python":
      return python(input);
    case "openai-js":
      return openaiJs(input);
    case "curl":
      return curl(input);
  }
}
