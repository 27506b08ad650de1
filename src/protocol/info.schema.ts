/**
 * GET /info (docs/AZURE-API.md "GET /info"): the three required fields; `chat-completion` is what the
 * service and Python's load_client accept.
 */
export interface ModelInfoResponse {
  model_name: string;
  model_type: "chat-completion";
  model_provider_name: string;
}
