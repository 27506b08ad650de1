/**
 * Lax-mode input conversion, as the Azure service's pydantic (v2, lax mode) applies it
 * (docs/ERRORS.md "Validation"): the one place phiserve converts a request value's type.
 *
 * - number fields take numeric strings (`"0.5"` → 0.5, surrounding whitespace ignored) and
 *   booleans (`true` → 1); `""` and other strings stay strings, so validation refuses them;
 * - integer fields take integer strings (`"3"`), booleans, and numbers without a fraction;
 * - boolean fields take pydantic's words (`"true"`, `"off"`, `"1"`, …) and the numbers 0 and 1;
 * - text fields take nothing but text: a number is not converted (pydantic refuses it too);
 * - `null` for an optional field that does not admit null means "not given" (the key is removed),
 *   so a conditionally required field sent as null is reported as missing.
 *
 * `coerceLax` walks a value along its JSON Schema (`type`, `properties`, `items`) and converts in
 * place; validation then runs without any coercion of its own. Values nothing can convert are left
 * as they are for validation to refuse. Recursion follows the schema, whose depth is fixed, and
 * bodies are depth-limited before this runs (docs/ERRORS.md "Limits").
 */

type SchemaNode = {
  type?: string | string[];
  properties?: Record<string, SchemaNode>;
  required?: string[];
  items?: SchemaNode;
};

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const INTEGER = /^[+-]?\d+$/;
const TRUE_WORDS = new Set(["1", "on", "t", "true", "y", "yes"]);
const FALSE_WORDS = new Set(["0", "off", "f", "false", "n", "no"]);

/** A finite number from a number, a numeric string or a boolean; undefined when there is none. */
export function toLaxNumber(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined;
  if (typeof value === "boolean") return value ? 1 : 0;
  if (typeof value !== "string") return undefined;
  const text = value.trim();
  if (!DECIMAL.test(text)) return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/** An integer from an integral number, an integer string or a boolean; undefined when there is none. */
export function toLaxInteger(value: unknown): number | undefined {
  if (typeof value === "string" && !INTEGER.test(value.trim())) return undefined;
  const n = toLaxNumber(value);
  return n !== undefined && Number.isInteger(n) ? n : undefined;
}

/** A boolean from a boolean, one of pydantic's words, or 0/1; undefined when there is none. */
export function toLaxBoolean(value: unknown): boolean | undefined {
  if (typeof value === "boolean") return value;
  if (value === 0 || value === 1) return value === 1;
  if (typeof value !== "string") return undefined;
  const word = value.trim().toLowerCase();
  return TRUE_WORDS.has(word) ? true : FALSE_WORDS.has(word) ? false : undefined;
}

/** Converts `value` in place along `schema` (see the module comment) and returns it (a new value at the root). */
export function coerceLax(schema: unknown, value: unknown): unknown {
  const node = schema as SchemaNode;
  const types = node.type === undefined ? [] : Array.isArray(node.type) ? node.type : [node.type];
  const converted = types.length === 0 || matchesType(types, value) ? value : convert(types, value);
  if (Array.isArray(converted) && node.items) {
    for (let i = 0; i < converted.length; i++) converted[i] = coerceLax(node.items, converted[i]);
  } else if (converted !== null && typeof converted === "object" && node.properties) {
    const record = converted as Record<string, unknown>;
    for (const [key, child] of Object.entries(node.properties)) {
      if (!Object.hasOwn(record, key)) continue;
      if (record[key] === null && !admitsNull(child) && !node.required?.includes(key)) delete record[key];
      else record[key] = coerceLax(child, record[key]);
    }
  }
  return converted;
}

function admitsNull(schema: SchemaNode): boolean {
  return schema.type === undefined || schema.type === "null" || (Array.isArray(schema.type) && schema.type.includes("null"));
}

function matchesType(types: readonly string[], value: unknown): boolean {
  return types.some((type) => {
    switch (type) {
      case "null": return value === null;
      case "array": return Array.isArray(value);
      case "object": return value !== null && typeof value === "object" && !Array.isArray(value);
      case "integer": return typeof value === "number" && Number.isInteger(value);
      default: return typeof value === type;
    }
  });
}

function convert(types: readonly string[], value: unknown): unknown {
  for (const type of types) {
    const converted = type === "number" ? toLaxNumber(value) : type === "integer" ? toLaxInteger(value) : type === "boolean" ? toLaxBoolean(value) : undefined;
    if (converted !== undefined) return converted;
  }
  return value;
}
