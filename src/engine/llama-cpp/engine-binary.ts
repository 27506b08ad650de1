/**
 * Which llama.cpp binary node-llama-cpp loaded, and how to build a native one
 * (docs/ENGINE-NOTES.md "Native build"). The prebuilt CPU binary is portable but has no OpenMP: its
 * own thread pool collapses at two threads on a 2-core machine. A local build (`phiserve engine
 * build`, node-llama-cpp's bundled llama.cpp source compiled with -march=native and OpenMP) is
 * found and preferred by `getLlama` from then on; the prebuilt binary stays the fallback.
 */
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { Llama } from "node-llama-cpp";

export interface EngineBinary {
  /** "localBuild": compiled on this machine; "prebuilt": the binary shipped in the npm package. */
  buildType: "localBuild" | "prebuilt";
  /** GPU backend of the binary, or false for CPU only. */
  gpu: string | false;
  /** The llama.cpp release the binary was built from. */
  llamaCpp: string;
  /** Whether ggml's CPU backend uses OpenMP for its threads. */
  openmp: boolean;
  /** CPU features the binary was compiled for and detected (from llama.cpp's system info). */
  cpuFeatures: string[];
  /** Cores doing the math (node-llama-cpp's count of physical cores). */
  cpuMathCores: number;
}

/** What the loaded binary is, from llama.cpp's own system info line. */
export function describeBinary(llama: Llama): EngineBinary {
  const flags = parseSystemInfo(llama.systemInfo);
  return {
    buildType: llama.buildType,
    gpu: llama.gpu,
    llamaCpp: llama.llamaCppRelease.release,
    openmp: flags.get("OPENMP") === "1",
    cpuFeatures: [...flags].filter(([name, value]) => value === "1" && name !== "OPENMP").map(([name]) => name),
    cpuMathCores: llama.cpuMathCores,
  };
}

/** `CPU : SSE3 = 1 | AVX = 1 | … | OPENMP = 1 |` → name → value (backend prefixes such as `CPU :` dropped). */
export function parseSystemInfo(info: string): Map<string, string> {
  const flags = new Map<string, string>();
  for (const part of info.split("|")) {
    const match = /([A-Za-z0-9_]+)\s*=\s*(\S+)\s*$/.exec(part.trim());
    if (match) flags.set(match[1]!, match[2]!);
  }
  return flags;
}

/** node-llama-cpp's command line (its package `bin`), run with this Node. */
export function nodeLlamaCppCli(): string {
  return join(dirname(createRequire(import.meta.url).resolve("node-llama-cpp")), "cli", "cli.js");
}

/**
 * Compiles node-llama-cpp's bundled llama.cpp source for this machine (offline: the source comes
 * from the git bundle inside the npm package; cmake and a C++ compiler must be installed).
 * Output goes to `log` as it comes; resolves with the exit code.
 */
export function buildNative(gpu: "false" | "cuda" | "vulkan" | "metal" | "auto", log: NodeJS.WritableStream): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [nodeLlamaCppCli(), "source", "download", "--gpu", gpu], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, CI: "true" }, // plain progress lines, no spinners
    });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    child.on("error", reject);
    child.on("close", (code) => resolve(code ?? 1));
  });
}
