import assert from "node:assert/strict";
import { createHmac, createPublicKey, type JsonWebKey } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { jwtVerify } from "jose";
import { deploymentGrants, JwksUnavailableError, JwtAuthenticator, type JwtAuthOptions } from "./jwt-authenticator.ts";
import { startTestIdentityProvider, type TestIdentityProvider } from "./test-jwks.ts";
import { isLoopbackHost } from "../lib/loopback.ts";

let idp: TestIdentityProvider;
before(async () => {
  idp = await startTestIdentityProvider();
});
after(async () => {
  await idp.close();
});

const authenticator = (extra: Partial<JwtAuthOptions> = {}): JwtAuthenticator =>
  new JwtAuthenticator({ issuer: idp.issuer, audience: idp.audience, jwksUri: idp.jwksUri, ...extra });

const b64json = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");
const nowSeconds = (): number => Math.floor(Date.now() / 1000);
const validClaims = (): Record<string, unknown> => ({
  sub: "attacker",
  iss: idp.issuer,
  aud: idp.audience,
  iat: nowSeconds(),
  exp: nowSeconds() + 3600,
});

function rsaPublicJwk(): JsonWebKey & { kid: string } {
  const jwk = idp.publicJwks().keys.find((k) => k.kty === "RSA");
  assert.ok(jwk?.kid);
  return jwk as JsonWebKey & { kid: string };
}

/** HS256 token whose HMAC secret is the RSA public key, the classic key-confusion attack. */
function hs256WithPublicKey(secret: string): string {
  const signingInput = `${b64json({ alg: "HS256", typ: "JWT", kid: rsaPublicJwk().kid })}.${b64json(validClaims())}`;
  return `${signingInput}.${createHmac("sha256", secret).update(signingInput).digest("base64url")}`;
}

describe("JwtAuthenticator: valid tokens", () => {
  it("accepts RS256 and ES256 tokens and returns the subject and claims", async () => {
    const auth = authenticator();
    for (const alg of ["RS256", "ES256"] as const) {
      const token = await idp.sign({ sub: `user-${alg}`, oid: "o-1" }, { alg });
      const principal = await auth.verify(token);
      assert.ok(principal, alg);
      assert.equal(principal.subject, `user-${alg}`);
      assert.equal(principal.deployments, null);
      assert.equal(principal.claims["oid"], "o-1");
      assert.equal(principal.claims["iss"], idp.issuer);
    }
  });

  it("accepts an aud array that contains the audience", async () => {
    const token = await idp.sign({}, { audience: ["api://other", idp.audience] });
    assert.equal((await authenticator().verify(token))?.subject, "test-subject");
  });

  it("finds the JWKS through OpenID discovery when jwksUri is omitted, using fetchImpl", async () => {
    const urls: string[] = [];
    const fetchImpl: typeof fetch = (input, init) => {
      urls.push(String(input));
      return fetch(input, init);
    };
    const auth = new JwtAuthenticator({ issuer: idp.issuer, audience: idp.audience, fetchImpl });
    assert.equal((await auth.verify(await idp.sign({ sub: "d" })))?.subject, "d");
    assert.equal((await auth.verify(await idp.sign({ sub: "e" }, { alg: "ES256" })))?.subject, "e");
    assert.deepEqual(urls, [`${idp.issuer}/.well-known/openid-configuration`, idp.jwksUri]);
  });
});

describe("JwtAuthenticator: rejected tokens resolve undefined", () => {
  it("rejects alg none", async () => {
    const auth = authenticator();
    const unsigned = `${b64json({ alg: "none", typ: "JWT" })}.${b64json(validClaims())}.`;
    assert.equal(JwtAuthenticator.looksLikeJwt(unsigned), true);
    assert.equal(await auth.verify(unsigned), undefined);
    const withJunkSignature = `${b64json({ alg: "none" })}.${b64json(validClaims())}.c2ln`;
    assert.equal(await auth.verify(withJunkSignature), undefined);
  });

  it("rejects HS256 signed with the public key (PEM or JWK) as the HMAC secret", async () => {
    const auth = authenticator();
    const pem = createPublicKey({ key: rsaPublicJwk(), format: "jwk" }).export({ type: "spki", format: "pem" }).toString();
    for (const secret of [pem, JSON.stringify(rsaPublicJwk())]) {
      const forged = hs256WithPublicKey(secret);
      // The forgery is well-formed: a verifier that allowed HS256 with that "secret" would accept it.
      await jwtVerify(forged, new TextEncoder().encode(secret), { algorithms: ["HS256"] });
      assert.equal(await auth.verify(forged), undefined);
    }
  });

  it("rejects wrong issuer and wrong audience", async () => {
    const auth = authenticator();
    assert.equal(await auth.verify(await idp.sign({}, { issuer: "https://evil.example/v2.0" })), undefined);
    assert.equal(await auth.verify(await idp.sign({}, { issuer: `${idp.issuer}/` })), undefined);
    assert.equal(await auth.verify(await idp.sign({}, { audience: "api://someone-else" })), undefined);
  });

  it("rejects tokens without sub or exp", async () => {
    const auth = authenticator();
    assert.equal(await auth.verify(await idp.sign({ sub: undefined })), undefined);
    assert.equal(await auth.verify(await idp.sign({ sub: "" })), undefined);
    assert.equal(await auth.verify(await idp.sign({ sub: 42 })), undefined);
    assert.equal(await auth.verify(await idp.sign({}, { expiresInSeconds: null })), undefined);
  });

  it("rejects tampered payloads and signatures", async () => {
    const auth = authenticator();
    for (const alg of ["RS256", "ES256"] as const) {
      const [header, , signature] = (await idp.sign({ sub: "alice", roles: ["deployment:a"] }, { alg })).split(".");
      const forgedPayload = b64json({ ...validClaims(), sub: "alice", roles: ["deployment:*"] });
      assert.equal(await auth.verify(`${header}.${forgedPayload}.${signature}`), undefined, alg);
      const [h, p, s = ""] = (await idp.sign({}, { alg })).split(".");
      const flipped = `${s.slice(0, 10)}${s[10] === "A" ? "B" : "A"}${s.slice(11)}`;
      assert.equal(await auth.verify(`${h}.${p}.${flipped}`), undefined, alg);
    }
  });

  it("rejects malformed tokens", async () => {
    const auth = authenticator();
    const valid = await idp.sign({});
    const [h, p, s] = valid.split(".");
    const malformed = [
      "",
      "not-a-jwt",
      "a.b",
      "a.b.c",
      "..",
      `${h}.${p}`,
      `${h}.${p}.${s}.extra`,
      `${h}.${p}!.${s}`,
      `${b64json("string header")}.${p}.${s}`,
      `${h}.${Buffer.from("not json").toString("base64url")}.${s}`,
      `${h}.${b64json([1, 2])}.${s}`,
      `${h}.${p}.${s}${"A".repeat(20_000)}`,
    ];
    for (const token of malformed) assert.equal(await auth.verify(token), undefined, token.slice(0, 40));
  });
});

describe("JwtAuthenticator: clock tolerance", () => {
  it("accepts exp/nbf within the default 60 s and rejects beyond it", async () => {
    const auth = authenticator();
    assert.ok(await auth.verify(await idp.sign({}, { expiresInSeconds: -30 })));
    assert.equal(await auth.verify(await idp.sign({}, { expiresInSeconds: -120 })), undefined);
    assert.ok(await auth.verify(await idp.sign({}, { notBeforeSeconds: 30 })));
    assert.equal(await auth.verify(await idp.sign({}, { notBeforeSeconds: 120 })), undefined);
  });

  it("honours clockToleranceSeconds", async () => {
    const strict = authenticator({ clockToleranceSeconds: 0 });
    assert.equal(await strict.verify(await idp.sign({}, { expiresInSeconds: -5 })), undefined);
    assert.equal(await strict.verify(await idp.sign({}, { notBeforeSeconds: 5 })), undefined);
    const lenient = authenticator({ clockToleranceSeconds: 300 });
    assert.ok(await lenient.verify(await idp.sign({}, { expiresInSeconds: -120 })));
  });
});

describe("JwtAuthenticator: JWKS refresh and key rotation", () => {
  it("re-fetches the JWKS once for an unknown kid, then rejects", async () => {
    const auth = authenticator({ jwksCooldownSeconds: 0 });
    assert.ok(await auth.verify(await idp.sign({})));
    const before = idp.jwksRequestCount;
    assert.equal(await auth.verify(await idp.sign({}, { kid: "no-such-key" })), undefined);
    assert.equal(idp.jwksRequestCount, before + 1);
  });

  it("does not re-fetch within the cooldown (default 30 s)", async () => {
    const auth = authenticator();
    assert.ok(await auth.verify(await idp.sign({})));
    const before = idp.jwksRequestCount;
    for (let i = 0; i < 5; i += 1) {
      assert.equal(await auth.verify(await idp.sign({}, { kid: `unknown-${i}` })), undefined);
    }
    assert.equal(idp.jwksRequestCount, before);
  });

  it("accepts a token signed with a rotated key after the refresh", async () => {
    const rotating = await startTestIdentityProvider();
    try {
      const auth = new JwtAuthenticator({
        issuer: rotating.issuer,
        audience: rotating.audience,
        jwksUri: rotating.jwksUri,
        jwksCooldownSeconds: 0,
      });
      const oldToken = await rotating.sign({ sub: "old" }, { alg: "ES256" });
      assert.equal((await auth.verify(oldToken))?.subject, "old");
      await rotating.rotateKey();
      assert.equal((await auth.verify(await rotating.sign({ sub: "new" })))?.subject, "new");
      assert.equal((await auth.verify(await rotating.sign({ sub: "new-es" }, { alg: "ES256" })))?.subject, "new-es");
      assert.equal(rotating.jwksRequestCount, 2);
      assert.equal(await auth.verify(oldToken), undefined, "the retired key is no longer published");
    } finally {
      await rotating.close();
    }
  });
});

describe("JwtAuthenticator: key source failures", () => {
  it("rejects with JwksUnavailableError when the JWKS is unreachable or not 200", async () => {
    const gone = await startTestIdentityProvider();
    const token = await gone.sign({});
    await gone.close();
    const unreachable = new JwtAuthenticator({ issuer: gone.issuer, audience: gone.audience, jwksUri: gone.jwksUri });
    await assert.rejects(unreachable.verify(token), JwksUnavailableError);
    const failing = authenticator({ fetchImpl: async () => new Response("oops", { status: 500 }) });
    await assert.rejects(failing.verify(await idp.sign({})), JwksUnavailableError);
    // A bad token is still just undefined: the key source is never consulted for it.
    assert.equal(await failing.verify(hs256WithPublicKey("x")), undefined);
  });

  it("rejects discovery whose issuer does not match, and backs off before retrying", async () => {
    let discoveries = 0;
    const fetchImpl: typeof fetch = async () => {
      discoveries += 1;
      return Response.json({ issuer: "https://evil.example", jwks_uri: idp.jwksUri });
    };
    const auth = new JwtAuthenticator({ issuer: idp.issuer, audience: idp.audience, fetchImpl });
    const token = await idp.sign({});
    await assert.rejects(auth.verify(token), JwksUnavailableError);
    await assert.rejects(auth.verify(token), JwksUnavailableError);
    assert.equal(discoveries, 1);
  });

  it("refuses plain-http key sources other than loopback and invalid options", () => {
    const base = { issuer: "https://login.microsoftonline.com/t/v2.0", audience: "api://x" };
    assert.throws(() => new JwtAuthenticator({ ...base, jwksUri: "http://keys.example/keys" }), TypeError);
    assert.throws(() => new JwtAuthenticator({ ...base, issuer: "http://idp.example" }), TypeError);
    assert.throws(() => new JwtAuthenticator({ ...base, audience: "" }), TypeError);
    assert.throws(() => new JwtAuthenticator({ ...base, clockToleranceSeconds: -1 }), TypeError);
    assert.throws(() => new JwtAuthenticator({ ...base, deploymentClaimPrefix: "" }), TypeError);
    assert.ok(new JwtAuthenticator(base));
    assert.ok(new JwtAuthenticator({ ...base, issuer: "https://sts.windows.net/t/", jwksUri: "https://login.microsoftonline.com/common/discovery/keys" }));
  });
});

describe("JwtAuthenticator: plain http follows the one loopback rule", () => {
  // The same hosts `serve` accepts for an unauthenticated bind (src/lib/loopback.ts); before the
  // rules were merged, 127.0.0.2 passed the serve check and failed this one.
  const base = { issuer: "https://login.microsoftonline.com/t/v2.0", audience: "api://x" };
  const cases: [host: string, loopback: boolean][] = [
    ["127.0.0.1", true],
    ["127.0.0.2", true],
    ["127.200.0.9", true],
    ["localhost", true],
    ["[::1]", true],
    ["[::ffff:127.0.0.2]", true],
    ["128.0.0.1", false],
    ["[::ffff:10.0.0.1]", false],
    ["0.0.0.0", false],
    ["keys.example", false],
  ];

  it("accepts an http jwksUri exactly when isLoopbackHost accepts its host", () => {
    for (const [host, loopback] of cases) {
      const jwksUri = `http://${host}:8080/keys`;
      assert.equal(isLoopbackHost(new URL(jwksUri).hostname), loopback, host);
      if (loopback) assert.ok(new JwtAuthenticator({ ...base, jwksUri }), host);
      else assert.throws(() => new JwtAuthenticator({ ...base, jwksUri }), TypeError, host);
    }
  });

  it("applies the same rule to an http issuer used for discovery", () => {
    assert.ok(new JwtAuthenticator({ ...base, issuer: "http://127.0.0.2:9000" }));
    assert.throws(() => new JwtAuthenticator({ ...base, issuer: "http://128.0.0.1:9000" }), TypeError);
  });
});

describe("deployment grants from roles/scp", () => {
  it("maps roles and scp through a verified token", async () => {
    const auth = authenticator();
    const cases: [Record<string, unknown>, string[] | null][] = [
      [{ roles: ["deployment:phi-4"] }, ["phi-4"]],
      [{ scp: "deployment:a deployment:b" }, ["a", "b"]],
      [{ roles: ["deployment:a", "Reader"], scp: "user.read deployment:b deployment:a" }, ["a", "b"]],
      [{ roles: ["deployment:phi-4", "deployment:*"] }, null],
      [{ scp: "deployment:*" }, null],
      [{ roles: ["Reader"], scp: "user.read" }, null],
      [{}, null],
    ];
    for (const [claims, expected] of cases) {
      assert.deepEqual((await auth.verify(await idp.sign(claims)))?.deployments, expected, JSON.stringify(claims));
    }
  });

  it("honours a custom prefix and never widens malformed grants to all", () => {
    assert.deepEqual(deploymentGrants({ roles: ["deployment:"] }), []);
    assert.deepEqual(deploymentGrants({ roles: "deployment:x" }), ["x"]);
    assert.deepEqual(deploymentGrants({ scp: ["deployment:y", 7] }), ["y"]);
    assert.equal(deploymentGrants({ roles: 5, scp: null }), null);
    assert.deepEqual(deploymentGrants({ roles: ["phi/a", "deployment:b"] }, "phi/"), ["a"]);
  });
});

describe("the admin role", () => {
  it("is read from the roles claim only (not from scp), as an array or a space-separated string", async () => {
    const auth = authenticator();
    const cases: [Record<string, unknown>, boolean][] = [
      [{ roles: ["phiserve.admin"] }, true],
      [{ roles: "Reader phiserve.admin" }, true],
      [{ roles: ["deployment:phi-4", "phiserve.admin"] }, true],
      [{ scp: "phiserve.admin" }, false],
      [{ roles: ["phiserve.admins", "Phiserve.Admin"] }, false],
      [{}, false],
    ];
    for (const [claims, expected] of cases) {
      assert.equal((await auth.verify(await idp.sign(claims)))?.admin, expected, JSON.stringify(claims));
    }
    assert.equal((await authenticator({ adminRole: "ops" }).verify(await idp.sign({ roles: ["ops"] })))?.admin, true);
  });
});

describe("JwtAuthenticator.looksLikeJwt", () => {
  it("tells JWTs from API keys", async () => {
    assert.equal(JwtAuthenticator.looksLikeJwt(await idp.sign({})), true);
    for (const value of ["0123456789abcdef0123456789abcdef", "sk-abc.def", "a.b.c", "", "eyJ.eyJ.", `${b64json([])}.e30.x`]) {
      assert.equal(JwtAuthenticator.looksLikeJwt(value), false, value);
    }
  });
});
