/**
 * Regression tests of issue 10's "crashes and 5xx from bad input": each case once answered 500,
 * 200 or fastify's own 422 shape; each must now be a 4xx in the Azure error shape (fastify inject
 * over the scripted engine; the socket-level suite is test/integration/hostile-input.test.ts).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { createApp, type App } from "../app.ts";
import { createFakeEngineFactory } from "../engine/fake/fake-engine-factory.ts";
import { fakeServeConfig } from "../../test/helpers/fake-config.ts";
import { MAX_JSON_DEPTH } from "./json-body.ts";
import { MAX_SCHEMA_DEPTH } from "../serving/json-schema-subset.ts";

const engines = createFakeEngineFactory({ tokens: ["{}"], contextLength: 4000 });
let app: App;

before(async () => {
  // The default JSON policy (constrained): response_format json_schema reaches the schema check.
  app = await createApp(fakeServeConfig(), pino({ level: "silent" }), { engines });
  await app.deployments.default.load();
});
after(async () => app.close());

const HI = '[{"role":"user","content":"hi"}]';
const post = (payload: string, url = "/chat/completions") =>
  app.http.inject({ method: "POST", url, headers: { "content-type": "application/json" }, payload });
const lastRequest = () => engines.engines[0]!.requests.at(-1)!;

interface Detail { type: string; loc: (string | number)[]; msg: string; ctx?: Record<string, unknown> }

/** Asserts a 4xx in the Azure envelope and returns its details. */
async function refused(payload: string, status = 422, url?: string): Promise<Detail[]> {
  const res = await post(payload, url);
  assert.equal(res.statusCode, status, `${payload.slice(0, 120)} → ${res.statusCode} ${res.body.slice(0, 300)}`);
  const body = res.json();
  assert.equal(body.statusCode, undefined, "not fastify's own error shape");
  assert.equal(typeof body.error?.code, "string", res.body.slice(0, 300));
  assert.equal(typeof body.error?.message, "string");
  assert.equal(body.error.status, status);
  assert.equal(res.headers["x-ms-error-code"], body.error.code);
  return body.error.details ?? [];
}

function detailAt(details: Detail[], loc: (string | number)[]): Detail {
  const found = details.find((d) => JSON.stringify(d.loc) === JSON.stringify(loc));
  assert.ok(found, `no detail at ${JSON.stringify(loc)} in ${JSON.stringify(details)}`);
  return found;
}

const nested = (levels: number, open: string, close: string, inner: string) => open.repeat(levels) + inner + close.repeat(levels);

test("seed: non-finite, unparsable and out-of-int64 values are a 422 at body.seed, never a 500", async () => {
  const cases: [string, string][] = [
    ['"1e999"', "int_parsing"],
    ['"Infinity"', "int_parsing"],
    ['"-Infinity"', "int_parsing"],
    ["1e400", "finite_number"],
    ["-1e400", "finite_number"],
    ["1e300", "less_than_equal"],
    ["-1e300", "greater_than_equal"],
    ["1.5", "int_type"],
  ];
  for (const [seed, type] of cases) {
    const details = await refused(`{"messages":${HI},"seed":${seed}}`);
    assert.equal(detailAt(details, ["body", "seed"]).type, type, seed);
  }
  // Infinity is no JSON token at all.
  assert.equal(detailAt(await refused(`{"messages":${HI},"seed":Infinity}`), ["body"]).type, "json_invalid");
  // The int64 range itself is accepted (its maximum parses to 2^63) and numeric strings convert.
  for (const [seed, expected] of [["9223372036854775807", 2 ** 63], ["-9223372036854775808", -(2 ** 63)], ['"42"', 42]] as const) {
    assert.equal((await post(`{"messages":${HI},"seed":${seed}}`)).statusCode, 200, seed);
    assert.equal(lastRequest().seed, expected);
  }
});

test(`bodies nested deeper than ${MAX_JSON_DEPTH} levels are a 422 json_invalid naming the limit, wherever the nesting is`, async () => {
  const deepSchema = nested(3000, '{"type":"object","properties":{"a":', "}}", '{"type":"string"}');
  const payloads = [
    `{"messages":${HI},"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":${deepSchema}}}}`,
    `{"messages":${HI},"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"array","items":${nested(20000, "[", "]", "1")}}}}}`,
    `{"messages":[{"role":"user","content":${nested(20000, "[", "]", '"x"')}}]}`,
    `{"messages":${HI},"stop":${nested(20000, "[", "]", '"x"')}}`,
    `{"messages":${HI},"temperature":${nested(20000, "[", "]", "1")}}`,
    nested(MAX_JSON_DEPTH + 1, '{"a":', "}", "1"),
  ];
  for (const payload of payloads) {
    const detail = detailAt(await refused(payload), ["body"]);
    assert.equal(detail.type, "json_invalid");
    assert.match(detail.msg, new RegExp(`nesting deeper than ${MAX_JSON_DEPTH} levels`));
    assert.deepEqual(detail.ctx, { max_depth: MAX_JSON_DEPTH });
  }
  // A pass-through logit_bias value on the OpenAI route.
  await refused(`{"messages":${HI},"logit_bias":{"1":${nested(20000, "[", "]", "1")}}}`, 422, "/v1/chat/completions");
  // At the limit the body parses (and the wrong type is reported); brackets inside strings don't count.
  const atLimit = detailAt(await refused(`{"messages":${HI},"stop":${nested(MAX_JSON_DEPTH - 1, "[", "]", '"x"')}}`), ["body", "stop", 0]);
  assert.equal(atLimit.type, "string_type");
  assert.equal((await post(`{"messages":[{"role":"user","content":"${"[{".repeat(700)}"}]}`)).statusCode, 200);
});

test(`response_format schemas nested deeper than ${MAX_SCHEMA_DEPTH} levels are refused with the limit named`, async () => {
  const schema = nested(MAX_SCHEMA_DEPTH + 1, '{"type":"array","items":', "}", '{"type":"string"}');
  const res = await post(`{"messages":${HI},"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":${schema}}}}`);
  assert.equal(res.statusCode, 422);
  assert.match(res.json().error.message, new RegExp(`nests deeper than ${MAX_SCHEMA_DEPTH} levels`));
});

test("a json_schema $ref that names no definition is a 422, not unconstrained output", async () => {
  const details = await refused(`{"messages":${HI},"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"$ref":"#/$defs/missing"}}}}`);
  detailAt(details, ["body", "response_format", "json_schema", "schema", "$ref"]);
});

test("GET /info with a repeated model query is a 422 at query.model", async () => {
  const res = await app.http.inject({ method: "GET", url: "/info?model=a&model=b" });
  assert.equal(res.statusCode, 422);
  assert.equal(res.json().error.code, "invalid_request");
  assert.equal(res.json().error.details[0].type, "string_type");
  assert.deepEqual(res.json().error.details[0].loc, ["query", "model"]);
});

test("a tool message with tool_call_id null is refused as missing the field", async () => {
  const details = await refused(`{"messages":[{"role":"user","content":"hi"},{"role":"tool","content":"42","tool_call_id":null}]}`);
  const detail = detailAt(details, ["body", "messages", 1, "tool_call_id"]);
  assert.equal(detail.type, "missing");
  assert.equal(detail.msg, "Field required");
});

test("coercion follows pydantic lax mode: numeric strings and booleans for numbers; nothing for text", async () => {
  const refusedCases: [string, (string | number)[], string][] = [
    [`{"messages":${HI},"temperature":""}`, ["body", "temperature"], "float_parsing"],
    [`{"messages":${HI},"max_tokens":""}`, ["body", "max_tokens"], "int_parsing"],
    [`{"messages":${HI},"top_p":"abc"}`, ["body", "top_p"], "float_parsing"],
    [`{"messages":${HI},"stop":5}`, ["body", "stop"], "string_type"],
    [`{"messages":${HI},"stop":[null]}`, ["body", "stop", 0], "string_type"],
    [`{"messages":${HI},"stop":["a",5]}`, ["body", "stop", 1], "string_type"],
    ['{"messages":[{"role":"user","content":5}]}', ["body", "messages", 0, "content"], "string_type"],
    [`{"messages":${HI},"model":5}`, ["body", "model"], "string_type"],
    [`{"messages":${HI},"stream":"maybe"}`, ["body", "stream"], "bool_type"],
  ];
  for (const [payload, loc, type] of refusedCases) assert.equal(detailAt(await refused(payload), loc).type, type, payload);

  const ok = await post(`{"messages":${HI},"temperature":"0.5","top_p":true,"presence_penalty":" 0.25 ","max_tokens":"3","stream":"false","model":null}`);
  assert.equal(ok.statusCode, 200, ok.body);
  const request = lastRequest();
  assert.equal(request.temperature, 0.5);
  assert.equal(request.topP, 1);
  assert.equal(request.presencePenalty, 0.25);
  assert.equal(ok.json().object, "chat.completion");
  // The pass-through parameters follow the same rules.
  const passed = await post(`{"messages":${HI},"n":"1","logprobs":"true","top_logprobs":"2","logit_bias":{"5":"-100"}}`, "/v1/chat/completions");
  assert.equal(passed.statusCode, 200, passed.body);
  assert.equal(lastRequest().topLogprobs, 2);
  assert.equal(lastRequest().logitBias?.get(5), -100);
  const badN = await post(`{"messages":${HI},"n":"1e1"}`, "/v1/chat/completions");
  assert.equal(badN.statusCode, 422);
  assert.equal(badN.json().error.details[0].type, "int_parsing");
});
