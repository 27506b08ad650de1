import type { FastifyInstance } from "fastify";
import { AppError } from "../../errors/app-error.ts";
import type { ModelInfoResponse } from "../../protocol/info.schema.ts";
import type { HttpServerDeps } from "../server.ts";
import { ROUTE_PREFIXES } from "../server.ts";

/** GET /info (Azure) and GET /v1/models (OpenAI). */
export function registerInfoRoutes(app: FastifyInstance, deps: HttpServerDeps): void {
  const { model } = deps;
  const info: ModelInfoResponse = { model_name: model.azureName, model_type: "chat-completion", model_provider_name: "Microsoft" };
  for (const prefix of ROUTE_PREFIXES) {
    app.get<{ Querystring: { model?: string } }>(`${prefix}/info`, async (request) => {
      const asked = request.query.model;
      // 2025-04-01 adds ?model=<deployment>; on a single-deployment server only its own names match.
      if (asked !== undefined && !matchesModel(asked, deps)) {
        throw new AppError("MODEL_NOT_FOUND", `The deployment '${asked}' does not exist.`, { param: "model" });
      }
      return info;
    });
  }
  const created = Math.floor(Date.now() / 1000);
  app.get("/v1/models", async () => ({
    object: "list",
    data: [{ id: model.deploymentName, object: "model", created, owned_by: "Microsoft" }],
  }));
}

function matchesModel(name: string, deps: HttpServerDeps): boolean {
  const wanted = name.toLowerCase();
  return wanted === deps.model.deploymentName.toLowerCase() || wanted === deps.model.azureName.toLowerCase();
}
