/**
 * The JSON Schema subset that constrained decoding enforces exactly (node-llama-cpp's GBNF JSON
 * schema support). A schema using anything else is refused with a 422 naming the keyword, rather
 * than producing output that might not validate. Annotations are accepted and dropped.
 */
import { AppError } from "../errors/app-error.ts";

/** Keywords enforced by the grammar, per schema kind. */
const STRUCTURAL = new Set(["type", "properties", "required", "additionalProperties", "minProperties", "maxProperties", "items", "prefixItems", "minItems", "maxItems", "enum", "const", "oneOf", "anyOf", "minLength", "maxLength", "format", "$defs", "$ref", "description"]);
/** Keywords that do not constrain output; removed before the grammar is built. */
const ANNOTATIONS = new Set(["title", "$schema", "$id", "$comment", "default", "examples", "deprecated", "readOnly", "writeOnly"]);
const FORMATS = new Set(["date-time", "time", "date"]);
const TYPES = new Set(["string", "number", "integer", "boolean", "null", "object", "array"]);

/** Validates a schema against the subset and returns it normalised for the grammar (anyOf → oneOf, annotations dropped). */
export function toGrammarSchema(schema: unknown, loc: (string | number)[]): Record<string, unknown> {
  return normalise(schema, loc) as Record<string, unknown>;
}

function normalise(node: unknown, loc: (string | number)[]): unknown {
  if (typeof node === "boolean") {
    if (node) return {}; // `true` accepts anything: an unconstrained JSON value
    throw unsupported(loc, "false", "the schema `false` matches nothing");
  }
  if (node === null || typeof node !== "object" || Array.isArray(node)) throw unsupported(loc, typeof node, "a schema must be an object");
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node as Record<string, unknown>)) {
    const at = [...loc, key];
    if (ANNOTATIONS.has(key)) continue;
    if (!STRUCTURAL.has(key)) throw unsupported(at, key, `the JSON schema keyword '${key}' is not supported by constrained decoding`);
    out[key === "anyOf" ? "oneOf" : key] = normaliseKeyword(key, value, at);
  }
  // Objects with declared properties emit only those unless extra ones are explicitly allowed:
  // still valid against the schema, and it keeps generation from wandering into invented keys.
  if (out.type === "object" && out.properties !== undefined && out.additionalProperties === undefined) out.additionalProperties = false;
  return out;
}

function normaliseKeyword(key: string, value: unknown, at: (string | number)[]): unknown {
  switch (key) {
    case "properties":
    case "$defs":
      return Object.fromEntries(Object.entries(asObject(value, at)).map(([k, v]) => [k, normalise(v, [...at, k])]));
    case "items":
    case "additionalProperties":
      return typeof value === "boolean" && key === "additionalProperties" ? value : normalise(value, at);
    case "prefixItems":
    case "oneOf":
    case "anyOf":
      return asArray(value, at).map((v, i) => normalise(v, [...at, i]));
    case "type":
      for (const t of Array.isArray(value) ? value : [value]) if (!TYPES.has(String(t))) throw unsupported(at, t, `unknown type '${String(t)}'`);
      return value;
    case "format":
      if (!FORMATS.has(String(value))) throw unsupported(at, value, `the string format '${String(value)}' is not supported (supported: ${[...FORMATS].join(", ")})`);
      return value;
    case "$ref":
      if (typeof value !== "string" || !value.startsWith("#/$defs/")) throw unsupported(at, value, "only local references of the form '#/$defs/<name>' are supported");
      return value;
    default:
      return value;
  }
}

function asObject(value: unknown, at: (string | number)[]): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw unsupported(at, value, "expected an object");
  return value as Record<string, unknown>;
}

function asArray(value: unknown, at: (string | number)[]): unknown[] {
  if (!Array.isArray(value)) throw unsupported(at, value, "expected an array");
  return value;
}

function unsupported(loc: (string | number)[], input: unknown, message: string): AppError {
  return new AppError("INVALID_REQUEST", `Unsupported JSON schema: ${message} (at ${loc.join(".")}).`, {
    param: String(loc[1] ?? "body"),
    details: [{ type: "unsupported_schema_keyword", loc, msg: message, input }],
  });
}
