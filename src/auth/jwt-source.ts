/**
 * Entra-style bearer tokens as a credential source: a thin adapter over {@link JwtAuthenticator},
 * which holds every verification decision (algorithms, issuer, audience, JWKS handling).
 */
import { AppError } from "../errors/app-error.ts";
import type { CredentialSource } from "./credential-source.ts";
import { JwksUnavailableError, JwtAuthenticator } from "./jwt-authenticator.ts";
import type { Principal } from "./principal.ts";

/** Seconds a client is told to wait when the identity provider's keys cannot be fetched. */
const AUTH_UNAVAILABLE_RETRY_SECONDS = 5;

/** A source that accepts tokens the verifier accepts; enabled whenever it exists (an issuer is configured). */
export function createJwtSource(verifier: JwtAuthenticator): CredentialSource {
  return {
    kind: "jwt",
    isEnabled: () => true,
    // A JWT is judged by its signature alone, never looked up as an API key: a token's validity
    // must not depend on what a key store happens to hold, and a JWKS outage must not fall through
    // to a key lookup that answers 401 "invalid credential" for a token that may well be valid.
    claims: (credential) => JwtAuthenticator.looksLikeJwt(credential),
    async verify(credential) {
      try {
        const verified = await verifier.verify(credential);
        if (!verified) return undefined;
        const principal: Principal = { id: `jwt:${verified.subject}`, deployments: verified.deployments, requestsPerMinute: null, tokensPerMinute: null };
        if (verified.admin) principal.admin = true;
        // A display name for audit lines (Entra's `name`; never a secret). Bounded: it is the token's own text.
        const name = verified.claims["name"];
        if (typeof name === "string" && name.length > 0) principal.name = name.slice(0, 200);
        return principal;
      } catch (error) {
        // 503 with retry-after, not 401: an outage of the identity provider says nothing about the
        // token, and clients retry a 503 instead of discarding a good token (docs/ERRORS.md).
        if (error instanceof JwksUnavailableError) {
          throw new AppError("AUTH_UNAVAILABLE", "The identity provider's signing keys cannot be fetched; retry shortly.", {
            retryAfterSeconds: AUTH_UNAVAILABLE_RETRY_SECONDS,
            cause: error,
          });
        }
        throw error;
      }
    },
  };
}
