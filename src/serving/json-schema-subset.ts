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

/**
 * Deepest nesting of subschemas (each `properties` entry, `items`, `oneOf` branch, definition… is one
 * level deeper). Real schemas stay far below it; the grammar builder and this check recurse per level.
 */
export const MAX_SCHEMA_DEPTH = 32;

/**
 * Validates a schema against the subset and returns it normalised for the grammar (anyOf → oneOf,
 * annotations dropped). Every `$ref` must name a definition in scope, and no definition may
 * refer back to itself without first opening an object or array. The grammar builder would
 * otherwise emit "any JSON" for a dangling reference (breaking the schema guarantee: issue 10) and
 * a left-recursive rule (`def0 ::= def0`) that llama.cpp cannot parse.
 */
export function toGrammarSchema(schema: unknown, loc: (string | number)[]): Record<string, unknown> {
  const normalised = normalise(schema, loc, 0) as Record<string, unknown>;
  const targets = new Map<SchemaObject, SchemaObject>();
  resolveRefs(normalised, new Map(), loc, targets);
  rejectBareCycles(targets, loc);
  return normalised;
}

function normalise(node: unknown, loc: (string | number)[], depth: number): unknown {
  if (depth > MAX_SCHEMA_DEPTH) throw unsupported(loc, "schema", `the schema nests deeper than ${MAX_SCHEMA_DEPTH} levels`);
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
    out[key === "anyOf" ? "oneOf" : key] = normaliseKeyword(key, value, at, depth + 1);
  }
  // Objects with declared properties emit only those unless extra ones are explicitly allowed:
  // still valid against the schema, and it keeps generation from wandering into invented keys.
  if (out.type === "object" && out.properties !== undefined && out.additionalProperties === undefined) out.additionalProperties = false;
  return out;
}

function normaliseKeyword(key: string, value: unknown, at: (string | number)[], depth: number): unknown {
  switch (key) {
    case "properties":
    case "$defs":
      return Object.fromEntries(Object.entries(asObject(value, at)).map(([k, v]) => [k, normalise(v, [...at, k], depth)]));
    case "items":
    case "additionalProperties":
      return typeof value === "boolean" && key === "additionalProperties" ? value : normalise(value, at, depth);
    case "prefixItems":
    case "oneOf":
    case "anyOf":
      return asArray(value, at).map((v, i) => normalise(v, [...at, i], depth));
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

type SchemaObject = Record<string, unknown>;
type Loc = (string | number)[];

/**
 * Checks every `$ref` against the definitions in scope and records its target. Scoping follows the
 * grammar builder (node-llama-cpp): a reference sees the `$defs` of its own schema and of every
 * enclosing one, and a definition's body sees those of the schema that declares it.
 */
function resolveRefs(node: SchemaObject, outer: ReadonlyMap<string, SchemaObject>, loc: Loc, targets: Map<SchemaObject, SchemaObject>): void {
  const defs = node.$defs as Record<string, SchemaObject> | undefined;
  const scope = defs ? new Map([...outer, ...Object.entries(defs)]) : outer;
  if (typeof node.$ref === "string") {
    const target = scope.get(node.$ref.slice("#/$defs/".length));
    if (!target) throw unsupported([...loc, "$ref"], node.$ref, `the reference '${node.$ref}' names no definition in $defs`);
    targets.set(node, target);
  }
  for (const [key, child] of subschemas(node)) resolveRefs(child, scope, [...loc, ...key], targets);
}

function subschemas(node: SchemaObject): [Loc, SchemaObject][] {
  const out: [Loc, SchemaObject][] = [];
  const add = (at: Loc, value: unknown) => {
    if (value !== null && typeof value === "object" && !Array.isArray(value)) out.push([at, value as SchemaObject]);
  };
  for (const key of ["properties", "$defs"]) {
    for (const [name, child] of Object.entries((node[key] as SchemaObject | undefined) ?? {})) add([key, name], child);
  }
  add(["items"], node.items);
  add(["additionalProperties"], node.additionalProperties);
  for (const key of ["prefixItems", "oneOf"]) ((node[key] as unknown[] | undefined) ?? []).forEach((child, i) => add([key, i], child));
  return out;
}

/** Refuses a definition that reaches itself through `$ref`s and `oneOf` branches alone (left recursion). */
function rejectBareCycles(targets: ReadonlyMap<SchemaObject, SchemaObject>, loc: Loc): void {
  // What a schema can turn into before it emits a character: its reference's target, or its branches' heads.
  const heads = (node: SchemaObject): SchemaObject[] => {
    const target = targets.get(node);
    if (target) return [target];
    return ((node.oneOf as SchemaObject[] | undefined) ?? []).flatMap(heads);
  };
  for (const start of new Set(targets.values())) {
    const seen = new Set<SchemaObject>();
    const pending = heads(start);
    while (pending.length > 0) {
      const next = pending.pop()!;
      if (next === start) throw unsupported(loc, "$ref", "a definition refers to itself without nesting inside an object or array");
      if (seen.has(next)) continue;
      seen.add(next);
      pending.push(...heads(next));
    }
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
