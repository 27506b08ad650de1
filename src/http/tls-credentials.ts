/**
 * The certificate and key of an HTTPS server, read from PEM files and reloaded when the files
 * change (a renewed certificate is served to new connections without a restart; established
 * connections keep theirs). Why a periodic stat and not fs.watch: renewal tools replace files by
 * rename or by swapping a symlink (certbot's live/ folder, Kubernetes secret volumes), and a
 * watch on the old inode misses both; stat follows the path. docs/CONFIG.md "TLS".
 */
import { readFileSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { createSecureContext } from "node:tls";
import type { Logger } from "pino";

/** PEM files of a certificate (chain) and its private key. */
export interface TlsFiles {
  certPath: string;
  keyPath: string;
}

export interface TlsCredentials {
  cert: Buffer;
  key: Buffer;
}

/** How often the files are checked for a change, ms. */
export const TLS_RELOAD_INTERVAL_MS = 2000;

/** Reads and checks the pair at start-up; throws an Error naming the files when they do not make a usable pair. */
export function readTlsCredentials(files: TlsFiles): TlsCredentials {
  let credentials: TlsCredentials;
  try {
    credentials = { cert: readFileSync(files.certPath), key: readFileSync(files.keyPath) };
  } catch (error) {
    throw new Error(`cannot read the TLS certificate or key: ${error instanceof Error ? error.message : String(error)}`);
  }
  checkPair(credentials, files);
  return credentials;
}

/** Throws unless the certificate and key parse and belong together (createSecureContext checks both). */
function checkPair(credentials: TlsCredentials, files: TlsFiles): void {
  try {
    createSecureContext(credentials);
  } catch (error) {
    throw new Error(`${files.certPath} and ${files.keyPath} are not a usable certificate and key: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/**
 * Calls `apply` with the new pair whenever either file changes (inode, size or mtime) and the new
 * pair is valid. A pair caught half-written (the certificate renewed, the key not yet) is retried
 * on the next check and the old one kept meanwhile; one warning per bad state, not per check.
 * `current` is the pair the server started with.
 */
export function watchTlsCredentials(
  files: TlsFiles,
  current: TlsCredentials,
  apply: (credentials: TlsCredentials) => void,
  deps: { logger: Logger; intervalMs?: number },
): { close(): void } {
  let served = current;
  let seen: string | undefined;
  let warned: string | undefined;
  let busy = false;
  const check = async () => {
    const now = await signature(files).catch(() => undefined);
    if (now === undefined || now === seen) return;
    try {
      const credentials = { cert: await readFile(files.certPath), key: await readFile(files.keyPath) };
      checkPair(credentials, files);
      if (!credentials.cert.equals(served.cert) || !credentials.key.equals(served.key)) {
        apply(credentials);
        served = credentials;
        deps.logger.info({ event: "tls.reloaded", certPath: files.certPath }, "TLS certificate reloaded");
      }
      seen = now;
      warned = undefined;
    } catch (error) {
      if (warned !== now) deps.logger.warn({ event: "tls.reload_failed", err: error }, "TLS files changed but are not a usable pair yet: keeping the current certificate");
      warned = now;
    }
  };
  const run = () => {
    if (busy) return;
    busy = true;
    void check().finally(() => (busy = false));
  };
  const timer = setInterval(run, deps.intervalMs ?? TLS_RELOAD_INTERVAL_MS);
  timer.unref();
  run();
  return { close: () => clearInterval(timer) };
}

async function signature(files: TlsFiles): Promise<string> {
  const [cert, key] = await Promise.all([stat(files.certPath), stat(files.keyPath)]);
  return `${cert.ino}:${cert.size}:${cert.mtimeMs}|${key.ino}:${key.size}:${key.mtimeMs}`;
}
