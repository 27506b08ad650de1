import { randomUUID } from "node:crypto";

/** A chat completion id as the serverless service returns it: 32 lowercase hex characters. */
export function createCompletionId(): string {
  return randomUUID().replaceAll("-", "");
}

export function createRequestId(): string {
  return randomUUID();
}
