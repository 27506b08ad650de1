/**
 * The server's logger: pino JSON lines on stderr, with credentials redacted.
 *
 * Lines go through pino's asynchronous destination (sonic-boom, `sync: false`): every request logs a
 * line, and a synchronous write(2) per line would hold the event loop for as long as stderr takes to
 * accept it (a pipe to a log shipper, a terminal). Lines logged while a write is in flight are joined
 * into the next write. pino registers such a destination to be written out synchronously when the
 * process exits (`process.exit`, as the SIGTERM shutdown does, or the event loop running dry), so the
 * lines of a shutdown are not lost; logger.test.ts checks that.
 */
import pino, { type Logger } from "pino";

export interface LoggerOptions {
  /** pino level name: fatal, error, warn, info, debug, trace or silent. */
  level: string;
  /** Where lines go: a file descriptor or a file path. Default 2 (stderr). */
  destination?: number | string | undefined;
}

export function createLogger(options: LoggerOptions): Logger {
  return pino(
    { level: options.level, redact: ["req.headers.authorization", 'req.headers["api-key"]'] },
    pino.destination({ dest: options.destination ?? 2, sync: false }),
  );
}
