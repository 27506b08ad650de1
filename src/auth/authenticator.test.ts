/**
 * The composite authenticator, driven directly: static keys, stored keys (SQLite in memory) and
 * bearer tokens from a loopback test identity provider, each alone and together.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, afterEach, before, describe, it, mock } from "node:test";
import { AppError } from "../errors/app-error.ts";
import { toHttpError } from "../errors/http-mapping.ts";
import { createStore } from "../store/create-store.ts";
import type { Store } from "../store/store.ts";
import { composeAuthenticator, createAuthenticator, unauthenticated, type Authenticator } from "./authenticator.ts";
import type { CredentialSource } from "./credential-source.ts";
import { ANONYMOUS, type Principal } from "./principal.ts";
import { JwtAuthenticator } from "./jwt-authenticator.ts";
import { STORED_KEY_TTL_MS } from "./stored-key-source.ts";
import { startTestIdentityProvider, type TestIdentityProvider } from "./test-jwks.ts";

const STATIC_KEY = "static-key-0123456789";
const OTHER_STATIC_KEY = "another-static-key";
const staticId = (key: string): string => `static:${createHash("sha256").update(key).digest("hex").slice(0, 8)}`;

let idp: TestIdentityProvider;
before(async () => {
  idp = await startTestIdentityProvider();
});
after(async () => {
  await idp.close();
});

const open: Authenticator[] = [];
const stores: Store[] = [];
afterEach(async () => {
  for (const auth of open.splice(0)) auth.close();
  for (const store of stores.splice(0)) await store.close();
});

async function authenticator(options: Parameters<typeof createAuthenticator>[0]): Promise<Authenticator> {
  const auth = await createAuthenticator(options);
  open.push(auth);
  return auth;
}

async function memoryStore(): Promise<Store> {
  const store = await createStore("sqlite::memory:");
  await store.migrate();
  stores.push(store);
  return store;
}

const jwtVerifier = (): JwtAuthenticator => new JwtAuthenticator({ issuer: idp.issuer, audience: idp.audience, jwksUri: idp.jwksUri });

describe("composite authenticator: static keys", () => {
  it("is off with no keys, and empty keys do not count", async () => {
    for (const staticKeys of [[], [""]]) {
      const auth = await authenticator({ staticKeys });
      assert.equal(auth.isEnabled(), false);
      assert.equal(await auth.authenticate({ apiKey: "anything" }), undefined);
      assert.equal(await auth.authenticate({ apiKey: "" }), undefined);
    }
  });

  it("accepts a configured key in api-key, Authorization: Bearer or a bare Authorization, as a digest-named principal", async () => {
    const auth = await authenticator({ staticKeys: [STATIC_KEY, OTHER_STATIC_KEY] });
    assert.equal(auth.isEnabled(), true);
    const expected: Principal = { id: staticId(STATIC_KEY), deployments: null, requestsPerMinute: null, tokensPerMinute: null };
    assert.deepEqual(await auth.authenticate({ apiKey: STATIC_KEY }), expected);
    assert.deepEqual(await auth.authenticate({ authorization: `Bearer ${STATIC_KEY}` }), expected);
    assert.deepEqual(await auth.authenticate({ authorization: `bearer   ${STATIC_KEY}  ` }), expected);
    assert.deepEqual(await auth.authenticate({ authorization: STATIC_KEY }), expected);
    // The verified-key cache answers the second time with the same principal.
    assert.deepEqual(await auth.authenticate({ apiKey: STATIC_KEY }), expected);
    assert.equal((await auth.authenticate({ apiKey: OTHER_STATIC_KEY }))?.id, staticId(OTHER_STATIC_KEY));
    assert.ok(!JSON.stringify(await auth.authenticate({ apiKey: STATIC_KEY })).includes(STATIC_KEY), "the principal never holds the key");
  });

  it("refuses wrong keys, prefixes and extensions of a key, and no credential", async () => {
    const auth = await authenticator({ staticKeys: [STATIC_KEY] });
    for (const apiKey of ["wrong", STATIC_KEY.slice(0, -1), `${STATIC_KEY}x`, STATIC_KEY.toUpperCase()]) {
      assert.equal(await auth.authenticate({ apiKey }), undefined, apiKey);
    }
    assert.equal(await auth.authenticate({}), undefined);
    assert.equal(await auth.authenticate({ apiKey: "", authorization: "Bearer " }), undefined);
  });

  it("tries api-key first, then Authorization, so a stale value in one header does not shadow the other", async () => {
    const auth = await authenticator({ staticKeys: [STATIC_KEY, OTHER_STATIC_KEY] });
    assert.equal((await auth.authenticate({ apiKey: "stale", authorization: `Bearer ${STATIC_KEY}` }))?.id, staticId(STATIC_KEY));
    assert.equal((await auth.authenticate({ apiKey: STATIC_KEY, authorization: "Bearer stale" }))?.id, staticId(STATIC_KEY));
    assert.equal((await auth.authenticate({ apiKey: OTHER_STATIC_KEY, authorization: `Bearer ${STATIC_KEY}` }))?.id, staticId(OTHER_STATIC_KEY));
  });
});

describe("composite authenticator: stored keys", () => {
  it("is on once the store holds an unrevoked key, and maps the key's grants and limits", async () => {
    const store = await memoryStore();
    const { record, key } = await store.createApiKey({ name: "team-a", deployments: ["phi-4"], rpm: 7, tpm: 700 });
    const auth = await authenticator({ staticKeys: [], store });
    assert.equal(auth.isEnabled(), true);
    assert.deepEqual(await auth.authenticate({ apiKey: key }), { id: `key:${record.id}`, deployments: ["phi-4"], requestsPerMinute: 7, tokensPerMinute: 700, name: "team-a" });
    assert.equal((await auth.authenticate({ authorization: `Bearer ${key}` }))?.id, `key:${record.id}`);
    assert.equal(await auth.authenticate({ apiKey: `${key}x` }), undefined);
  });

  it("carries a key's content-safety override into the principal, and leaves the property out when the key has none", async () => {
    const store = await memoryStore();
    const off = await store.createApiKey({ name: "trusted-off", contentSafety: "off" });
    const annotate = await store.createApiKey({ name: "trusted-annotate", contentSafety: "annotate", deployments: ["phi-4"] });
    const plain = await store.createApiKey({ name: "plain" });
    const auth = await authenticator({ staticKeys: [], store });
    assert.deepEqual(await auth.authenticate({ apiKey: off.key }), {
      id: `key:${off.record.id}`, deployments: null, requestsPerMinute: null, tokensPerMinute: null, name: "trusted-off", contentSafety: "off",
    });
    assert.deepEqual(await auth.authenticate({ authorization: `Bearer ${annotate.key}` }), {
      id: `key:${annotate.record.id}`, deployments: ["phi-4"], requestsPerMinute: null, tokensPerMinute: null, name: "trusted-annotate", contentSafety: "annotate",
    });
    const principal = await auth.authenticate({ apiKey: plain.key });
    assert.equal(principal?.id, `key:${plain.record.id}`);
    assert.ok(principal && !("contentSafety" in principal), "a key without an override yields no contentSafety property");
    // Answered from the lookup cache the second time: the override is still there.
    assert.equal((await auth.authenticate({ apiKey: off.key }))?.contentSafety, "off");
  });

  it("an empty store leaves authentication off, but a key created since start still authenticates", async () => {
    const store = await memoryStore();
    const auth = await authenticator({ staticKeys: [], store });
    assert.equal(auth.isEnabled(), false);
    const { record, key } = await store.createApiKey({ name: "late" });
    assert.equal((await auth.authenticate({ apiKey: key }))?.id, `key:${record.id}`);
  });

  it("turns on when the periodic presence check sees the first key", async (t) => {
    t.mock.timers.enable({ apis: ["setInterval"] });
    const store = await memoryStore();
    const auth = await authenticator({ staticKeys: [], store });
    assert.equal(auth.isEnabled(), false);
    await store.createApiKey({ name: "first" });
    t.mock.timers.tick(STORED_KEY_TTL_MS);
    // The refresh is a store query started by the tick: wait until it has answered.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(auth.isEnabled(), true);
  });

  it("caches lookups for the TTL: a revoked key is refused once its cached answer expires", async () => {
    const store = await memoryStore();
    const { record, key } = await store.createApiKey({ name: "revoked-soon" });
    let lookups = 0;
    const counting = { listApiKeys: () => store.listApiKeys(), findApiKeyByHash: (hash: string) => (lookups++, store.findApiKeyByHash(hash)) };
    let nowMs = 1_000_000;
    const auth = await authenticator({ staticKeys: [], store: counting, now: () => nowMs });
    assert.equal((await auth.authenticate({ apiKey: key }))?.id, `key:${record.id}`);
    assert.equal(await auth.authenticate({ apiKey: "unknown" }), undefined);
    assert.equal(await auth.authenticate({ apiKey: "unknown" }), undefined);
    assert.equal(lookups, 2, "a repeated unknown key is answered from the cache");
    assert.equal(await store.revokeApiKey(record.id), true);
    nowMs += STORED_KEY_TTL_MS - 1;
    assert.equal((await auth.authenticate({ apiKey: key }))?.id, `key:${record.id}`, "still cached");
    nowMs += 1;
    assert.equal(await auth.authenticate({ apiKey: key }), undefined, "refused after the TTL");
    assert.equal(lookups, 3);
  });

  it("static keys are checked first, and a stored key works next to them", async () => {
    const store = await memoryStore();
    const { record, key } = await store.createApiKey({ name: "k" });
    const auth = await authenticator({ staticKeys: [STATIC_KEY], store });
    assert.equal((await auth.authenticate({ apiKey: STATIC_KEY }))?.id, staticId(STATIC_KEY));
    assert.equal((await auth.authenticate({ apiKey: key }))?.id, `key:${record.id}`);
    assert.equal((await auth.authenticate({ apiKey: "nope", authorization: `Bearer ${key}` }))?.id, `key:${record.id}`);
  });
});

describe("composite authenticator: bearer tokens", () => {
  it("a configured issuer turns authentication on; a valid token becomes jwt:<sub> with its deployment grants", async () => {
    const auth = await authenticator({ staticKeys: [], jwt: jwtVerifier() });
    assert.equal(auth.isEnabled(), true);
    const token = await idp.sign({ sub: "user-1", roles: ["deployment:phi-4"] });
    const expected: Principal = { id: "jwt:user-1", deployments: ["phi-4"], requestsPerMinute: null, tokensPerMinute: null };
    assert.deepEqual(await auth.authenticate({ authorization: `Bearer ${token}` }), expected);
    assert.deepEqual(await auth.authenticate({ apiKey: token }), expected);
    assert.equal(await auth.authenticate({ authorization: `Bearer ${await idp.sign({}, { audience: "api://other" })}` }), undefined);
    assert.equal(await auth.authenticate({ authorization: `Bearer ${await idp.sign({}, { expiresInSeconds: -3600 })}` }), undefined);
  });

  it("a JWT-shaped credential is judged by the issuer only when one is configured, as a key otherwise", async () => {
    // A static key that happens to look like a JWT (here: a token for another audience).
    const jwtShapedKey = await idp.sign({ sub: "k" }, { audience: "api://elsewhere" });
    assert.equal(JwtAuthenticator.looksLikeJwt(jwtShapedKey), true);
    const keysOnly = await authenticator({ staticKeys: [jwtShapedKey] });
    assert.equal((await keysOnly.authenticate({ apiKey: jwtShapedKey }))?.id, staticId(jwtShapedKey));
    const withIssuer = await authenticator({ staticKeys: [jwtShapedKey], jwt: jwtVerifier() });
    assert.equal(await withIssuer.authenticate({ apiKey: jwtShapedKey }), undefined);
    // Ordinary keys still reach the key sources when an issuer is configured.
    const mixed = await authenticator({ staticKeys: [STATIC_KEY], jwt: jwtVerifier() });
    assert.equal((await mixed.authenticate({ apiKey: STATIC_KEY }))?.id, staticId(STATIC_KEY));
  });

  it("an unreachable JWKS is AUTH_UNAVAILABLE (503, retry-after 5), not a 401", async () => {
    const gone = await startTestIdentityProvider();
    const token = await gone.sign({ sub: "u" });
    await gone.close();
    const auth = await authenticator({
      staticKeys: [STATIC_KEY],
      jwt: new JwtAuthenticator({ issuer: gone.issuer, audience: gone.audience, jwksUri: gone.jwksUri }),
    });
    const outage = await auth.authenticate({ authorization: `Bearer ${token}` }).then(
      () => assert.fail("expected AUTH_UNAVAILABLE"),
      (error: unknown) => error,
    );
    assert.ok(outage instanceof AppError);
    assert.equal(outage.code, "AUTH_UNAVAILABLE");
    assert.equal(outage.retryAfterSeconds, 5);
    assert.equal(toHttpError(outage).status, 503);
    // A valid key in api-key is tried first, so the outage does not stop key holders.
    assert.equal((await auth.authenticate({ apiKey: STATIC_KEY, authorization: `Bearer ${token}` }))?.id, staticId(STATIC_KEY));
  });
});

describe("composeAuthenticator: how credentials reach sources", () => {
  function fakeSource(kind: string, accepts: string, claims?: (credential: string) => boolean): CredentialSource & { asked: string[]; closed: number } {
    const source = {
      kind,
      asked: [] as string[],
      closed: 0,
      isEnabled: () => true,
      async verify(credential: string) {
        source.asked.push(credential);
        return credential === accepts ? { ...ANONYMOUS, id: `${kind}:${credential}` } : undefined;
      },
      close() {
        source.closed += 1;
      },
      ...(claims ? { claims } : {}),
    };
    return source;
  }

  it("asks sources in order, a claimed credential only its claimant, and each credential once", async () => {
    const first = fakeSource("first", "b");
    const second = fakeSource("second", "c");
    const dotted = fakeSource("dotted", "x.y", (credential) => credential.includes("."));
    const auth = composeAuthenticator([first, second, dotted]);
    assert.equal((await auth.authenticate({ apiKey: "c" }))?.id, "second:c");
    assert.equal((await auth.authenticate({ apiKey: "x.z", authorization: "Bearer x.y" }))?.id, "dotted:x.y");
    assert.equal(await auth.authenticate({ apiKey: "same", authorization: "Bearer same" }), undefined);
    assert.deepEqual(first.asked, ["c", "same"]);
    assert.deepEqual(second.asked, ["c", "same"]);
    assert.deepEqual(dotted.asked, ["x.z", "x.y"]);
    auth.close();
    assert.deepEqual([first.closed, second.closed, dotted.closed], [1, 1, 1]);
  });

  it("is enabled when any source is", () => {
    const off: CredentialSource = { kind: "off", isEnabled: () => false, verify: async () => undefined };
    let on = false;
    const later: CredentialSource = { kind: "later", isEnabled: () => on, verify: async () => undefined };
    const auth = composeAuthenticator([off, later]);
    assert.equal(auth.isEnabled(), false);
    on = true;
    assert.equal(auth.isEnabled(), true);
    assert.equal(composeAuthenticator([]).isEnabled(), false);
  });
});

it("unauthenticated() is Azure's 401 text", () => {
  const error = unauthenticated();
  assert.equal(error.code, "UNAUTHENTICATED");
  assert.equal(error.message, "Auth token validation failed. Please provide a valid key or a valid AAD token");
  assert.equal(toHttpError(error).status, 401);
});

it("ANONYMOUS is frozen: a stage cannot widen every open request's grants", () => {
  assert.throws(() => {
    (ANONYMOUS as { deployments: string[] | null }).deployments = ["x"];
  }, TypeError);
});

describe("composite authenticator: admin callers", () => {
  it("an --admin-key caller is an admin with an id of its own; a plain static key is not", async () => {
    const auth = await authenticator({ staticKeys: ["plain-key-0123456789"], adminKeys: ["admin-key-0123456789"] });
    const admin = await auth.authenticate({ apiKey: "admin-key-0123456789" });
    assert.equal(admin?.admin, true);
    assert.match(admin?.id ?? "", /^admin:[0-9a-f]{8}$/);
    const plain = await auth.authenticate({ apiKey: "plain-key-0123456789" });
    assert.ok(plain && !plain.admin, "a static key is no admin");
    assert.equal(await auth.authenticate({ apiKey: "admin-key-0123456789x" }), undefined);
  });

  it("a stored key created with admin: true is an admin; others are not", async () => {
    const store = await memoryStore();
    const admin = await store.createApiKey({ name: "ops", admin: true });
    const plain = await store.createApiKey({ name: "team" });
    const auth = await authenticator({ staticKeys: [], store });
    assert.equal((await auth.authenticate({ apiKey: admin.key }))?.admin, true);
    assert.ok(!(await auth.authenticate({ apiKey: plain.key }))?.admin);
  });
});
