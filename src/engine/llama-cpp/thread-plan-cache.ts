/**
 * Thread plans on disk, one JSON file per model file × binary × machine × context shape, so the
 * calibration (thread-plan.ts) runs once per combination. A file that cannot be read or written is
 * not an error: the plan is measured again.
 */
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { availableParallelism, cpus } from "node:os";
import { join } from "node:path";
import type { ThreadPlanData } from "./thread-plan.ts";

/** Bump when the calibration or the plan's format changes: older files are then ignored. */
const FORMAT = 1;

export interface ThreadPlanKey {
  modelPath: string;
  /** llama.cpp's system info line and build type: the binary. */
  binary: string;
  sequences: number;
  contextSize: number;
  batchSize: number;
  /** The context's flash attention setting: it changes what a batch costs. */
  flashAttention: boolean | "auto";
}

export async function threadPlanFile(dir: string, key: ThreadPlanKey): Promise<string> {
  const model = await stat(key.modelPath);
  const identity = JSON.stringify({
    FORMAT,
    model: [key.modelPath, model.size, model.mtimeMs],
    binary: key.binary,
    machine: [cpus()[0]?.model ?? "unknown", availableParallelism()],
    shape: [key.sequences, key.contextSize, key.batchSize, key.flashAttention],
  });
  return join(dir, `threads-${createHash("sha256").update(identity).digest("hex").slice(0, 24)}.json`);
}

export async function readThreadPlan(file: string): Promise<ThreadPlanData | undefined> {
  try {
    const data = JSON.parse(await readFile(file, "utf8")) as Partial<ThreadPlanData>;
    if (!Array.isArray(data.decode) || typeof data.prompt !== "number") return undefined;
    return data as ThreadPlanData;
  } catch {
    return undefined;
  }
}

export async function writeThreadPlan(file: string, data: ThreadPlanData): Promise<void> {
  await mkdir(join(file, ".."), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, JSON.stringify(data));
  await rename(temporary, file);
}
