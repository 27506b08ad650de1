/**
 * Which llama.cpp binary node-llama-cpp loaded, and how to build a native one
 * (docs/ENGINE-NOTES.md "Native build"). The prebuilt CPU binary is portable but has no OpenMP: its
 * own thread pool collapses at two threads on a 2-core machine. A local build (`phiserve engine
 * build`, node-llama-cpp's bundled llama.cpp source compiled with -march=native and OpenMP) is
 * found and preferred by `getLlama` from then on; the prebuilt binary stays the fallback.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { getLlama, LlamaLogLevel, type Llama } from "node-llama-cpp";

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

/** The binary `getLlama` picks for `gpu` (as the engine loads it), described; nothing else is loaded. */
export async function inspectBinary(gpu: "auto" | "cpu" | "cuda" | "vulkan" | "metal"): Promise<EngineBinary> {
  const llama = await getLlama({ gpu: gpu === "cpu" ? false : gpu, build: "never", logLevel: LlamaLogLevel.error });
  try {
    return describeBinary(llama);
  } finally {
    await llama.dispose();
  }
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

/**
 * Added to every compile of the native build: the whole of it for this CPU, not only ggml (which
 * GGML_NATIVE covers), and without AMX. llama.cpp's samplers and node-llama-cpp's addon, compiled for
 * baseline x86-64, run legacy SSE code on the thread that just ran ggml's AVX kernels; on this
 * machine kind that mix makes a softmax over the vocabulary 38× slower (docs/ENGINE-NOTES.md
 * "AVX and SSE in one loop").
 */
const NATIVE_FLAGS = "-march=native -mno-amx-tile -mno-amx-int8 -mno-amx-bf16";

/** node-llama-cpp's command line (its package `bin`), run with this Node. */
export function nodeLlamaCppCli(): string {
  return join(dirname(createRequire(import.meta.url).resolve("node-llama-cpp")), "cli", "cli.js");
}

/**
 * Compiles node-llama-cpp's bundled llama.cpp source for this machine (offline: the source comes
 * from the git bundle inside the npm package, checked out once; cmake and a C++ compiler must be
 * installed). Output goes to `log` as it comes; resolves with the exit code.
 *
 * Every file for this CPU, without AMX (docs/ENGINE-NOTES.md "Native build": the bundled release's AMX
 * kernels die of SIGILL on CPUs that have it). The flags go through compiler wrappers because cmake-js sets CMAKE_CXX_FLAGS
 * itself (ignoring CXXFLAGS), and a custom cmake option would change the build's folder name, which
 * `getLlama` then no longer finds on its own.
 */
export async function buildNative(gpu: "false" | "cuda" | "vulkan" | "metal" | "auto", log: NodeJS.WritableStream): Promise<number> {
  const wrappers = await mkdtemp(join(tmpdir(), "phiserve-cc-"));
  try {
    const wrap = async (name: string, compiler: string) => {
      const path = join(wrappers, name);
      await writeFile(path, `#!/bin/sh\nexec ${compiler} "$@" ${NATIVE_FLAGS}\n`, { mode: 0o755 });
      return path;
    };
    const env = { ...process.env, CI: "true", CC: await wrap("cc", process.env.CC ?? "cc"), CXX: await wrap("c++", process.env.CXX ?? "c++") };
    // The source is checked out of the bundle once; `source build` recompiles it without touching it.
    const checkedOut = existsSync(join(dirname(nodeLlamaCppCli()), "..", "..", "llama", "llama.cpp", "CMakeLists.txt"));
    const args = checkedOut ? ["source", "build", "--gpu", gpu] : ["source", "download", "--gpu", gpu];
    return await new Promise<number>((resolve, reject) => {
      const child = spawn(process.execPath, [nodeLlamaCppCli(), ...args], { stdio: ["ignore", "pipe", "pipe"], env });
      child.stdout.pipe(log, { end: false });
      child.stderr.pipe(log, { end: false });
      child.on("error", reject);
      child.on("close", (code) => resolve(code ?? 1));
    });
  } finally {
    await rm(wrappers, { recursive: true, force: true });
  }
}
