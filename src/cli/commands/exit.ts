import { CliError } from "../resolve-model.ts";

/** Prints a user-facing failure and exits non-zero; unexpected errors keep their stack. */
export function exitWithCliError(error: unknown): never {
  const text = error instanceof CliError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`phiserve: ${text}\n`);
  process.exit(1);
}
