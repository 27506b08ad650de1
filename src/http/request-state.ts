/**
 * What the HTTP layer attaches to a request on its way to a route: who sent it (`principal`, set
 * by the authentication hook) and the body keys `extra-parameters: pass-through` hands on. Both
 * are fastify request decorations (declared here, registered in server.ts with null defaults).
 */
import type { FastifyInstance } from "fastify";
import { ANONYMOUS, type Principal } from "../auth/principal.ts";

declare module "fastify" {
  interface FastifyRequest {
    /** The authenticated caller; null until the auth hook ran (or when auth is off). */
    principal: Principal | null;
    /** Body keys passed through to the model (`extra-parameters: pass-through`); null when none. */
    passThrough: Record<string, unknown> | null;
    /** True once a use case logged this request's `request.completed` line (with its usage): the server skips its own. */
    completionLogged: boolean;
  }
}

/** Registers the decorations (null defaults keep every request the same shape). */
export function decorateRequestState(app: FastifyInstance): void {
  app.decorateRequest("principal", null);
  app.decorateRequest("passThrough", null);
  app.decorateRequest("completionLogged", false);
}

/** The caller: the authenticated principal, or anonymous when authentication is off. */
export function principalOf(request: { principal: Principal | null }): Principal {
  return request.principal ?? ANONYMOUS;
}

/** Path prefixes every API route is served under: `/`, and `/models` for Foundry-style base URLs. */
export const ROUTE_PREFIXES = ["", "/models"] as const;
