/**
 * Chromium for the browser tests: Debian's `chromium` package (scripts/chromium.sh installs it; CI exports its
 * path as PHISERVE_CHROMIUM), driven by playwright-core, which downloads no browser of its own.
 *
 * Outside CI, a machine without Chromium skips the browser tests with that reason; in CI (CI=true) a missing
 * browser fails them, so they cannot silently stop running there.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser } from "playwright-core";

const CANDIDATES = ["/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

/** The browser's executable, or undefined when there is none. */
export function findChromium(): string | undefined {
  const fromEnv = process.env.PHISERVE_CHROMIUM;
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : undefined;
  return CANDIDATES.find((path) => existsSync(path));
}

/** `false` when the tests can run; otherwise why they are skipped. Throws in CI, where Chromium must be present. */
export function browserSkipReason(): string | false {
  if (findChromium()) return false;
  const reason = "Chromium is not installed (bash scripts/chromium.sh installs Debian's package; PHISERVE_CHROMIUM names another)";
  if (process.env.CI === "true" || process.env.CI === "1") throw new Error(`browser tests in CI: ${reason}`);
  return reason;
}

export async function launchChromium(): Promise<Browser> {
  const executablePath = findChromium();
  if (!executablePath) throw new Error("Chromium is not installed");
  // --no-sandbox: CI runs as root, where Chromium refuses its sandbox.
  return chromium.launch({ executablePath, headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
}

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Where screenshots go: $PHISERVE_TEST_ARTIFACTS, else .cache/artifacts/browser (git-ignored). */
export function artifactsDir(): string {
  const dir = process.env.PHISERVE_TEST_ARTIFACTS ?? join(REPO_ROOT, ".cache", "artifacts", "browser");
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** The built pages (dist/web): the tests serve what `npm run build` made; built here when absent. */
export function webBuildExists(): boolean {
  return existsSync(join(REPO_ROOT, "dist", "web", "playground", "index.html"));
}

export { REPO_ROOT };
