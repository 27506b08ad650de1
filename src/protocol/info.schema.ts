/**
 * GET /info (docs/AZURE-API.md "GET /info"): the three required fields; `chat-completion` is what the
 * service and Python's load_client accept.
 */
export interface ModelInfoResponse {
  model_name: string;
  model_type: "chat-completion";
  model_provider_name: string;
}

/**
 * GET /info's query: `model` picks a deployment by name (2025-04-01). `?model=a&model=b` parses to a
 * list and is refused (422 at `["query","model"]`, as FastAPI locates it) rather than guessed at.
 */
export const InfoQuerySchema = { type: "object", properties: { model: { type: "string" } } } as const;
