/**
 * A throwaway OpenID identity provider for tests: a loopback HTTP server (127.0.0.1, random
 * port) serving `/.well-known/openid-configuration` and `/keys`, with freshly generated RS256
 * and ES256 key pairs, and a `sign` helper that issues access tokens like Entra ID's.
 * Test-only: never use it to issue real credentials.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from "jose";

/** Signature algorithms the test provider signs with. */
export type TestSigningAlgorithm = "RS256" | "ES256";

/** Options of {@link TestIdentityProvider.sign}. */
export interface TestSignOptions {
  /** Default "RS256". */
  alg?: TestSigningAlgorithm;
  /** Overrides the header `kid` (the current key still signs), e.g. to name an unknown key. */
  kid?: string;
  /** `exp` = now + this; negative for an already expired token; null omits `exp`. Default 3600. */
  expiresInSeconds?: number | null;
  /** When set, `nbf` = now + this. */
  notBeforeSeconds?: number;
  /** Default: the provider's `audience`. */
  audience?: string | string[];
  /** Default: the provider's `issuer`. */
  issuer?: string;
}

/** A running test identity provider. */
export interface TestIdentityProvider {
  /** `http://127.0.0.1:PORT`, also the `iss` of signed tokens. */
  readonly issuer: string;
  /** `${issuer}/keys`. */
  readonly jwksUri: string;
  /** Default `aud` of signed tokens. */
  readonly audience: string;
  /** How many times `/keys` has been requested. */
  readonly jwksRequestCount: number;
  /** The JWKS currently served (public keys only). */
  publicJwks(): { keys: JWK[] };
  /**
   * Signs a JWT with the current key for `opts.alg`. `sub` defaults to "test-subject" (pass
   * `sub: undefined` to omit it); `iss`, `aud`, `iat`, `exp` and optionally `nbf` are set.
   */
  sign(claims: Record<string, unknown>, opts?: TestSignOptions): Promise<string>;
  /** Replaces both key pairs with new ones (new `kid`s); the JWKS then lists only the new keys. */
  rotateKey(): Promise<void>;
  /** Stops the server. */
  close(): Promise<void>;
}

/** Options of {@link startTestIdentityProvider}. */
export interface TestIdentityProviderOptions {
  /** Default `aud` of signed tokens. Default "api://phiserve". */
  audience?: string;
}

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

type KeyRing = Record<TestSigningAlgorithm, SigningKey>;

/** Starts a test identity provider on 127.0.0.1 with a random port. */
export async function startTestIdentityProvider(options: TestIdentityProviderOptions = {}): Promise<TestIdentityProvider> {
  const audience = options.audience ?? "api://phiserve";
  let generation = 1;
  let keys = await generateKeyRing(generation);
  let jwksRequestCount = 0;
  const publicJwks = (): { keys: JWK[] } => ({ keys: [keys.RS256.publicJwk, keys.ES256.publicJwk] });

  let issuer = "";
  const server = createServer((req, res) => {
    if (req.url === "/keys") jwksRequestCount += 1;
    route(req, res, { issuer, publicJwks });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    issuer,
    jwksUri: `${issuer}/keys`,
    audience,
    get jwksRequestCount() {
      return jwksRequestCount;
    },
    publicJwks,
    sign: (claims, opts = {}) => signToken(keys, claims, { issuer, audience, ...opts }),
    async rotateKey() {
      generation += 1;
      keys = await generateKeyRing(generation);
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function route(req: IncomingMessage, res: ServerResponse, ctx: { issuer: string; publicJwks: () => { keys: JWK[] } }): void {
  const send = (status: number, body: unknown): void => {
    res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
    res.end(JSON.stringify(body));
  };
  if (req.method !== "GET") return send(405, { error: "method_not_allowed" });
  if (req.url === "/.well-known/openid-configuration") {
    return send(200, {
      issuer: ctx.issuer,
      jwks_uri: `${ctx.issuer}/keys`,
      id_token_signing_alg_values_supported: ["RS256", "ES256"],
      response_types_supported: ["code"],
      subject_types_supported: ["pairwise"],
    });
  }
  if (req.url === "/keys") return send(200, ctx.publicJwks());
  send(404, { error: "not_found" });
}

async function generateKeyRing(generation: number): Promise<KeyRing> {
  const [rs, es] = await Promise.all([
    generateSigningKey("RS256", `rs256-${generation}`),
    generateSigningKey("ES256", `es256-${generation}`),
  ]);
  return { RS256: rs, ES256: es };
}

async function generateSigningKey(alg: TestSigningAlgorithm, kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { kid, privateKey, publicJwk };
}

function signToken(
  keys: KeyRing,
  claims: Record<string, unknown>,
  opts: TestSignOptions & { issuer: string; audience: string | string[] },
): Promise<string> {
  const alg = opts.alg ?? "RS256";
  const key = keys[alg];
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ sub: "test-subject", ...claims })
    .setProtectedHeader({ alg, kid: opts.kid ?? key.kid, typ: "JWT" })
    .setIssuer(opts.issuer)
    .setAudience(opts.audience)
    .setIssuedAt(now);
  if (opts.expiresInSeconds !== null) jwt.setExpirationTime(now + (opts.expiresInSeconds ?? 3600));
  if (opts.notBeforeSeconds !== undefined) jwt.setNotBefore(now + opts.notBeforeSeconds);
  return jwt.sign(key.privateKey);
}
