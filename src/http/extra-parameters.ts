/**
 * The `extra-parameters` header (docs/AZURE-API.md "extra-parameters", "Errors"): what happens to
 * body keys the API does not define. Absent or `error` → 400 naming them; `drop` → removed;
 * `pass-through` → handed to the engine. Any other value → 400 listing the valid options, worded
 * as the service words it.
 */
import { AppError } from "../errors/app-error.ts";
import { KNOWN_REQUEST_KEYS } from "../protocol/chat-completions.schema.ts";

export type ExtraParametersMode = "error" | "drop" | "pass-through";
const MODES: readonly ExtraParametersMode[] = ["error", "drop", "pass-through"];

const pythonList = (items: readonly string[]): string => `[${items.map((i) => `'${i}'`).join(", ")}]`;

export function parseExtraParametersMode(header: string | string[] | undefined, fallback: ExtraParametersMode): ExtraParametersMode {
  if (header === undefined) return fallback;
  const value = (Array.isArray(header) ? header[0] ?? "" : header).trim();
  if ((MODES as readonly string[]).includes(value)) return value as ExtraParametersMode;
  throw new AppError(
    "UNSUPPORTED_PARAMETER",
    `Unexpected EXTRA_PARAMETERS option ${value}, expected options are ${pythonList(MODES)}`,
    { param: "extra-parameters" },
  );
}

/**
 * Removes unknown keys from `body` according to `mode` and returns the ones to pass through.
 * Bodies that are not objects are left for schema validation to reject.
 */
export function applyExtraParameters(body: unknown, mode: ExtraParametersMode): Record<string, unknown> {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return {};
  const record = body as Record<string, unknown>;
  const unknown = Object.keys(record).filter((key) => !KNOWN_REQUEST_KEYS.has(key));
  if (unknown.length === 0) return {};
  if (mode === "error") {
    throw new AppError(
      "UNSUPPORTED_PARAMETER",
      `Extra parameters ${pythonList(unknown)} are not allowed when extra-parameters is not set or set to be 'error'. ` +
        "Set extra-parameters to 'pass-through' to pass to the model.",
      { param: unknown[0] },
    );
  }
  const passed: Record<string, unknown> = {};
  for (const key of unknown) {
    if (mode === "pass-through") passed[key] = record[key];
    delete record[key];
  }
  return passed;
}
