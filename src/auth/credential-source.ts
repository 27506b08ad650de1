/**
 * A place credentials are checked against: static keys, stored keys or a token issuer. The
 * composite authenticator (authenticator.ts) asks the sources in turn about each credential a
 * request presents; a source knows nothing about HTTP headers.
 */
import type { Principal } from "./principal.ts";

export interface CredentialSource {
  /** Short name for logs and tests: "static", "stored", "jwt". */
  readonly kind: string;
  /**
   * True while this source makes authentication mandatory (it holds at least one key, or an issuer
   * is configured). A server with no enabled source runs open.
   */
  isEnabled(): boolean;
  /**
   * True when the credential has this source's own format (a JWT). A claimed credential is judged
   * by the claiming sources only, and a source with `claims` is asked only about what it claims.
   * Absent: the source is asked about every unclaimed credential.
   */
  claims?(credential: string): boolean;
  /**
   * The caller this credential proves, or undefined when it proves none. Never throws for a bad
   * credential; throws an AppError only when the source itself cannot answer (AUTH_UNAVAILABLE).
   */
  verify(credential: string): Promise<Principal | undefined>;
  /** Stops timers; the source is not used afterwards. */
  close?(): void;
}
