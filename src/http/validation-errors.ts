/**
 * Turns ajv validation errors (fastify's schema check) into the pydantic-style items Azure
 * returns in 422 bodies: `{type, loc: ["body", …path], msg, input, ctx?}` (docs/AZURE-API.md "Errors").
 * A query-string error is located as FastAPI locates it: `["query", name]`.
 */
import type { ValidationDetail } from "../errors/app-error.ts";

/** The subset of an ajv ErrorObject this mapping reads. */
export interface AjvErrorLike {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

const TYPE_NAMES: Record<string, [string, string]> = {
  number: ["float_type", "Input should be a valid number"],
  integer: ["int_type", "Input should be a valid integer"],
  string: ["string_type", "Input should be a valid string"],
  boolean: ["bool_type", "Input should be a valid boolean"],
  array: ["list_type", "Input should be a valid list"],
  object: ["dict_type", "Input should be a valid dictionary"],
};

/** fastify's validation contexts → the first `loc` item pydantic/FastAPI would use. */
const LOC_ROOTS: Record<string, string> = { body: "body", querystring: "query", params: "path", headers: "header" };

export function toValidationDetails(errors: readonly AjvErrorLike[], data: unknown, context = "body"): ValidationDetail[] {
  const details: ValidationDetail[] = [];
  const root = LOC_ROOTS[context] ?? context;
  for (const error of errors) {
    if (error.keyword === "if") continue; // the failing `then` branch is reported on its own
    const path = error.instancePath.split("/").slice(1).map(decodeSegment);
    const detail = toDetail(error, root, path, data);
    if (!details.some((d) => d.type === detail.type && d.loc.join("/") === detail.loc.join("/"))) details.push(detail);
  }
  return details;
}

function toDetail(error: AjvErrorLike, root: string, path: (string | number)[], body: unknown): ValidationDetail {
  const loc: (string | number)[] = [root, ...path];
  const input = valueAt(body, path);
  const p = error.params;
  switch (error.keyword) {
    case "required":
      return { type: "missing", loc: [...loc, String(p.missingProperty)], msg: "Field required", input };
    case "maximum":
      return { type: "less_than_equal", loc, msg: `Input should be less than or equal to ${formatBound(p.limit)}`, input, ctx: { le: p.limit } };
    case "minimum":
      return { type: "greater_than_equal", loc, msg: `Input should be greater than or equal to ${formatBound(p.limit)}`, input, ctx: { ge: p.limit } };
    case "minItems":
      return { type: "too_short", loc, msg: `List should have at least ${p.limit} item${p.limit === 1 ? "" : "s"} after validation`, input, ctx: { min_length: p.limit } };
    case "maxItems":
      return { type: "too_long", loc, msg: `List should have at most ${p.limit} items after validation`, input, ctx: { max_length: p.limit } };
    case "enum":
    case "const": {
      const expected = (p.allowedValues as unknown[] | undefined) ?? [p.allowedValue];
      return { type: "literal_error", loc, msg: `Input should be ${expected.map((v) => `'${String(v)}'`).join(", ")}`, input, ctx: { expected } };
    }
    case "pattern":
      return { type: "string_pattern_mismatch", loc, msg: `String should match pattern '${String(p.pattern)}'`, input };
    case "type":
      return typeDetail(String(p.type), loc, input);
    default:
      return { type: "value_error", loc, msg: error.message ?? "Invalid value", input };
  }
}

function typeDetail(expected: string, loc: (string | number)[], input: unknown): ValidationDetail {
  if (loc.length === 1) {
    return { type: "model_attributes_type", loc, msg: "Input should be a valid dictionary or object to extract fields from", input };
  }
  const first = expected.split(",")[0] ?? expected;
  // What lax mode could not convert (src/protocol/lax-coercion.ts), in pydantic's words.
  if (first === "number" || first === "integer") {
    if (typeof input === "number" && !Number.isFinite(input)) return { type: "finite_number", loc, msg: "Input should be a finite number", input };
    if (typeof input === "string") {
      return first === "number"
        ? { type: "float_parsing", loc, msg: "Input should be a valid number, unable to parse string as a number", input }
        : { type: "int_parsing", loc, msg: "Input should be a valid integer, unable to parse string as an integer", input };
    }
  }
  const [type, msg] = TYPE_NAMES[first] ?? ["type_error", `Input should be of type ${expected}`];
  return { type, loc, msg, input };
}

/** ±2^63 stand for the int64 limits (`seed`): 2^63 − 1 is not representable and parses to 2^63. */
function formatBound(limit: unknown): string {
  if (limit === 2 ** 63) return "9223372036854775807";
  if (limit === -(2 ** 63)) return "-9223372036854775808";
  return String(limit);
}

function decodeSegment(segment: string): string | number {
  const text = segment.replaceAll("~1", "/").replaceAll("~0", "~");
  return /^\d+$/.test(text) ? Number(text) : text;
}

function valueAt(root: unknown, path: readonly (string | number)[]): unknown {
  let value = root;
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<string | number, unknown>)[key];
  }
  return value;
}
