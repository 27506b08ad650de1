/**
 * `/admin/*` (docs/ADMIN-API.md): the HTTP adapter of the admin use cases. The routes live in an encapsulated
 * fastify plugin whose own onRequest hook checks the admin role, so nothing is added to the hooks every other
 * route (the chat route above all) runs. Authentication itself is the server's (401 before this hook runs).
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { AppError } from "../../errors/app-error.ts";
import type { AdminContext, AdminDeployment, AdminService } from "../../admin/admin-service.ts";
import { audit } from "../../admin/admin-service.ts";
import {
  CreateKeyRequestSchema,
  DeploymentParamsSchema,
  KeyIdParamsSchema,
  UsageQuerySchema,
  UsageSeriesQuerySchema,
  type CreateKeyRequest,
  type UsageQueryString,
  type UsageSeriesQueryString,
} from "../../protocol/admin.schema.ts";
import { principalOf } from "../request-state.ts";

export interface AdminRouteOptions {
  /**
   * True when a server that runs open (no credential source enabled) lets every caller use the admin API: set
   * for loopback servers only, where every other route is open to local processes too. A `--no-auth` server on
   * another address never opens its admin API (docs/ADMIN-API.md "Who may call it").
   */
  openWhenUnauthenticated: boolean;
}

export function registerAdminRoutes<D extends AdminDeployment>(app: FastifyInstance, admin: AdminService<D>, options: AdminRouteOptions): void {
  void app.register(
    async (scope) => {
      scope.addHook("onRequest", (request, _reply, done) => {
        // request.principal is null only when authentication is off (the server's hook set it otherwise, or answered 401).
        if (request.principal === null ? options.openWhenUnauthenticated : request.principal.admin === true) return done();
        audit(contextOf(request), "admin.denied", `${request.method} ${request.url.split("?")[0]}`, { outcome: "denied" });
        done(new AppError("ADMIN_REQUIRED", "This key or token may not use the admin API: it needs the admin role (an --admin-key, a key created with --admin, or the admin role in a token)."));
      });

      if (admin.hasStore()) {
        scope.get("/keys", async () => ({ data: await admin.listKeys() }));
        scope.post<{ Body: CreateKeyRequest }>("/keys", { schema: { body: CreateKeyRequestSchema } }, async (request, reply) => {
          reply.status(201).header("cache-control", "no-store");
          return admin.createKey(request.body, contextOf(request));
        });
        scope.delete<{ Params: { id: string } }>("/keys/:id", { schema: { params: KeyIdParamsSchema } }, async (request) => admin.revokeKey(request.params.id, contextOf(request)));
        scope.get<{ Querystring: UsageQueryString }>("/usage", { schema: { querystring: UsageQuerySchema } }, async (request) => admin.usage(request.query));
        scope.get<{ Querystring: UsageSeriesQueryString }>("/usage/series", { schema: { querystring: UsageSeriesQuerySchema } }, async (request) => admin.usageSeries(request.query));
      }
      scope.get("/deployments", async () => ({ data: admin.listDeployments() }));
      scope.post<{ Params: { name: string } }>("/deployments/:name/load", { schema: { params: DeploymentParamsSchema } }, async (request) => admin.load(request.params.name, contextOf(request)));
      scope.post<{ Params: { name: string } }>("/deployments/:name/unload", { schema: { params: DeploymentParamsSchema } }, async (request) => admin.unload(request.params.name, contextOf(request)));
    },
    { prefix: "/admin" },
  );
}

function contextOf(request: FastifyRequest): AdminContext {
  return { principal: principalOf(request), log: request.log };
}
