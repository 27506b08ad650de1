import type { FastifyInstance } from "fastify";
import type { ModelInfoResponse } from "../../protocol/info.schema.ts";
import type { Deployment } from "../../deployments/deployment.ts";
import type { HttpServerDeps } from "../server.ts";
import { principalOf, ROUTE_PREFIXES } from "../server.ts";

const toInfo = (d: Deployment): ModelInfoResponse => ({ model_name: d.model.azureName, model_type: "chat-completion", model_provider_name: "Microsoft" });

/** GET /info (Azure; `?model=` picks a deployment, 2025-04-01) and GET /v1/models (OpenAI). */
export function registerInfoRoutes(app: FastifyInstance, deps: HttpServerDeps): void {
  for (const prefix of ROUTE_PREFIXES) {
    app.get<{ Querystring: { model?: string } }>(`${prefix}/info`, async (request) => {
      const header = request.headers["azureml-model-deployment"];
      const name = request.query.model ?? (typeof header === "string" ? header : undefined);
      const deployment = name === undefined ? deps.deployments.default : deps.deployments.resolve(name, undefined);
      if (name !== undefined) deployment.authorize(principalOf(request));
      return toInfo(deployment);
    });
  }
  const created = Math.floor(Date.now() / 1000);
  app.get("/v1/models", async (request) => {
    const principal = principalOf(request);
    const visible = deps.deployments.list().filter((d) => d.allows(principal));
    return { object: "list", data: visible.map((d) => ({ id: d.name, object: "model", created, owned_by: "Microsoft" })) };
  });
}
