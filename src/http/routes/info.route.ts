import type { FastifyInstance } from "fastify";
import { InfoQuerySchema, type ModelInfoResponse } from "../../protocol/info.schema.ts";
import type { Limit } from "../../quota/quota.ts";
import type { Principal } from "../../auth/principal.ts";
import { principalOf, ROUTE_PREFIXES } from "../request-state.ts";

/** What /info and /v1/models need of a deployment. */
export interface InfoDeployment {
  readonly name: string;
  readonly model: { readonly azureName: string };
  readonly limit: Limit;
  allows(principal: Principal): boolean;
  authorize(principal: Principal): void;
}

export interface InfoDeployments {
  readonly default: InfoDeployment;
  list(): readonly InfoDeployment[];
  resolve(header: string | undefined, bodyModel: string | undefined): InfoDeployment;
}

const toInfo = (d: InfoDeployment): ModelInfoResponse => ({ model_name: d.model.azureName, model_type: "chat-completion", model_provider_name: "Microsoft" });

/** GET /info (Azure; `?model=` picks a deployment, 2025-04-01) and GET /v1/models (OpenAI). */
export function registerInfoRoutes(app: FastifyInstance, deployments: InfoDeployments): void {
  for (const prefix of ROUTE_PREFIXES) {
    app.get<{ Querystring: { model?: string } }>(`${prefix}/info`, { schema: { querystring: InfoQuerySchema } }, async (request) => {
      const header = request.headers["azureml-model-deployment"];
      const name = request.query.model ?? (typeof header === "string" ? header : undefined);
      const deployment = name === undefined ? deployments.default : deployments.resolve(name, undefined);
      if (name !== undefined) deployment.authorize(principalOf(request));
      return toInfo(deployment);
    });
  }
  const created = Math.floor(Date.now() / 1000);
  app.get("/v1/models", async (request) => {
    const principal = principalOf(request);
    const visible = deployments.list().filter((d) => d.allows(principal));
    return { object: "list", data: visible.map((d) => ({ id: d.name, object: "model", created, owned_by: "Microsoft" })) };
  });
}
