import { test } from "node:test";
import assert from "node:assert/strict";
import { AppError } from "../errors/app-error.ts";
import { MAX_SCHEMA_DEPTH, toGrammarSchema } from "./json-schema-subset.ts";

const LOC = ["body", "response_format", "json_schema", "schema"];

function refused(schema: unknown): AppError {
  try {
    toGrammarSchema(schema, LOC);
  } catch (error) {
    assert.ok(error instanceof AppError, String(error));
    assert.equal(error.code, "INVALID_REQUEST");
    return error;
  }
  assert.fail(`expected ${JSON.stringify(schema)} to be refused`);
}

test("a $ref that names no definition is refused where it stands (the grammar would accept any JSON)", () => {
  const error = refused({ $ref: "#/$defs/missing" });
  assert.deepEqual(error.details?.[0]?.loc, [...LOC, "$ref"]);
  assert.match(error.message, /'#\/\$defs\/missing' names no definition/);
  refused({ type: "object", properties: { a: { $ref: "#/$defs/a" } }, $defs: { b: { type: "string" } } });
  // A definition is visible to its declaring schema and what it encloses, not to siblings.
  refused({ type: "object", properties: { a: { type: "object", $defs: { x: { type: "string" } }, properties: {} }, b: { $ref: "#/$defs/x" } } });
});

test("references resolve in scope, recursion through objects and arrays is allowed", () => {
  const tree = { $defs: { node: { type: "object", properties: { name: { type: "string" }, children: { type: "array", items: { $ref: "#/$defs/node" } } } } }, $ref: "#/$defs/node" };
  assert.equal(toGrammarSchema(tree, LOC).$ref, "#/$defs/node");
  const nested = { type: "object", $defs: { x: { type: "string" } }, properties: { a: { type: "object", properties: { b: { $ref: "#/$defs/x" } } } } };
  assert.ok(toGrammarSchema(nested, LOC));
});

test("a definition that reaches itself through $ref/anyOf alone (left recursion) is refused", () => {
  refused({ $defs: { a: { $ref: "#/$defs/a" } }, $ref: "#/$defs/a" });
  refused({ $defs: { a: { anyOf: [{ $ref: "#/$defs/b" }, { type: "string" }] }, b: { oneOf: [{ $ref: "#/$defs/a" }] } }, $ref: "#/$defs/a" });
});

test(`schemas nested deeper than ${MAX_SCHEMA_DEPTH} levels are refused with the limit named`, () => {
  const nest = (levels: number) => {
    let schema: Record<string, unknown> = { type: "string" };
    for (let i = 0; i < levels; i++) schema = { type: "array", items: schema };
    return schema;
  };
  assert.ok(toGrammarSchema(nest(MAX_SCHEMA_DEPTH), LOC));
  const error = refused(nest(MAX_SCHEMA_DEPTH + 1));
  assert.match(error.message, new RegExp(`deeper than ${MAX_SCHEMA_DEPTH} levels`));
});
