/** What a deployment serves, as the chat use case sees it: resolved once at start-up. */
import type { ModelCapabilities } from "./chat-command.ts";

export interface ServedModel {
  deploymentName: string;
  /** `model_name` in /info and `model` in responses, e.g. "Phi-3.5-Mini-Instruct". */
  azureName: string;
  chatTemplate: string;
  /** False: system messages are translated into user messages (Azure behaviour). */
  supportsSystemRole: boolean;
  capabilities: ModelCapabilities;
}
