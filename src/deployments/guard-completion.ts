/**
 * A deployment of this server used as a content-safety classifier (a Llama Guard model, or a chat model
 * as a JSON judge; docs/SAFETY.md "Guard model and judge"): the guard's request goes through the same
 * steps as a chat request to that deployment (its template, its scheduler, greedy decoding, JSON
 * constrained by grammar when a schema is given), with the result collected as text.
 */
import type { GuardCompletion } from "../safety/guard-classifier.ts";
import { toChatCommand } from "../serving/chat-command.ts";
import type { DeploymentRegistry } from "./deployment-registry.ts";

/** The tenant guard calls are scheduled as (fair sharing with the deployment's own callers). */
const GUARD_TENANT = "content-safety";

export function deploymentCompletion(registry: DeploymentRegistry, name: string): GuardCompletion {
  return async (request, signal) => {
    const deployment = registry.find(name);
    if (!deployment) throw new Error(`The guard deployment '${name}' does not exist.`);
    await registry.ensureLoaded(deployment);
    const format = request.jsonSchema ? { response_format: { type: "json_schema" as const, json_schema: { name: "verdict", strict: true, schema: request.jsonSchema } } } : {};
    const command = toChatCommand({ messages: request.messages, max_tokens: request.maxTokens, temperature: 0, ...format }, {}, { ...deployment.model.capabilities, supportsJsonOutput: true });
    const prepared = await deployment.chat.prepare(command, signal, { chatTemplate: request.chatTemplate });
    const admission = await deployment.scheduler.admit({ tenant: GUARD_TENANT, slots: 1, signal });
    try {
      let text = "";
      await deployment.chat.run(prepared, signal, { text: (_i, t) => void (text += t), toolCalls: () => undefined, end: () => undefined }, () => undefined);
      if (signal.aborted) throw signal.reason;
      return text;
    } finally {
      admission.release();
    }
  };
}
