/**
 * The benchmarks' llama-server: started on a free port with the given arguments, ready once `/health` answers.
 */
import { spawn } from "node:child_process";

export interface LlamaServerProcess {
  url: string;
  pid: number | undefined;
  stop(): Promise<void>;
}

export async function startLlamaServer(bin: string, args: string[]): Promise<LlamaServerProcess> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const child = spawn(bin, [...args, "--host", "127.0.0.1", "--port", String(port), "--no-webui"], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    child.kill("SIGTERM");
    await exited;
  };
  const url = `http://127.0.0.1:${port}`;
  try {
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error(`llama-server exited: ${log}`);
      if ((await fetch(`${url}/health`).catch(() => undefined))?.ok) break;
      if (i > 1200) throw new Error(`llama-server did not become healthy: ${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, pid: child.pid, stop };
}
