/**
 * Starts the real `phiserve serve` CLI as a child process on a free port (port 0) and waits for
 * its "ready" line. Used by integration tests with the official clients.
 *
 * Which CLI: by default the TypeScript sources through tsx, so a test runs what was just edited with no
 * build step and no stale dist/. With PHISERVE_TEST_CLI=dist, the compiled `bin/phiserve.cjs` that users
 * run (`npm run build` first); CI runs the suite that way on its second Node version.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { once } from "node:events";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const CLI_ARGS = cliArgs(process.env.PHISERVE_TEST_CLI ?? "source");

function cliArgs(kind: string): string[] {
  if (kind === "dist") return [fileURLToPath(new URL("../../bin/phiserve.cjs", import.meta.url))];
  if (kind === "source") return ["--import", import.meta.resolve("tsx"), fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url))];
  throw new Error(`PHISERVE_TEST_CLI must be "source" or "dist", not ${JSON.stringify(kind)}`);
}

/** Each test server gets its own data folder (its default SQLite usage database), unless the test passes one. */
function isolatedEnv(env: NodeJS.ProcessEnv | undefined): NodeJS.ProcessEnv {
  return { ...process.env, PHISERVE_DATA_DIR: mkdtempSync(join(tmpdir(), "phiserve-data-")), ...env };
}

export interface RunningServer {
  url: string;
  process: ChildProcess;
  /** Everything the process wrote to stderr (structured logs). */
  logs(): string;
  /** The process's exit code and signal, once it has ended (resolves at once if it already has). */
  exited(): Promise<[number | null, NodeJS.Signals | null]>;
  close(): Promise<void>;
}

export async function startServer(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunningServer> {
  const child = spawn(process.execPath, [...CLI_ARGS, "serve", "--port", "0", "--gpu", "cpu", ...args], {
    env: isolatedEnv(options.env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  // Listened for from the start: a process that dies of a signal keeps exitCode null, so the state alone cannot say.
  const exit = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once("exit", (code, signal) => resolve([code, signal])));
  const url = await new Promise<string>((resolve, reject) => {
    // Not ready in time: the child is killed (SIGKILL: a server stuck loading may ignore SIGTERM), else the test runner waits on it forever.
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`server not ready in time\n${stderr}`));
    }, options.timeoutMs ?? 60_000);
    child.stdout!.on("data", (d: Buffer) => {
      stdout += d.toString();
      const match = /phiserve ready: (https?:\/\/\S+)/.exec(stdout);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before ready\n${stdout}\n${stderr}`));
    });
  });
  return {
    url,
    process: child,
    logs: () => stderr,
    exited: () => exit,
    async close() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exit;
    },
  };
}

/** Runs the CLI to completion; resolves with its exit code and output. */
export async function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [...CLI_ARGS, ...args], { env: isolatedEnv(env), stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, "exit")) as [number | null];
  return { code, stdout, stderr };
}

/** One unlabelled series of the server's /metrics (`name value`); NaN when the server does not report it. */
export async function readMetric(server: RunningServer, name: string, headers: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`, { headers })).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return Number(line?.split(" ")[1] ?? NaN);
}
