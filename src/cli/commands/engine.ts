/**
 * `phiserve engine info` and `phiserve engine build`: which llama.cpp binary serves GGUF models,
 * and compiling a native one from node-llama-cpp's bundled source (docs/ENGINE-NOTES.md
 * "Native build").
 */
import { execFileSync } from "node:child_process";
import { buildNative, inspectBinary } from "../../engine/llama-cpp/engine-binary.ts";
import { CliError } from "../resolve-model.ts";
import { exitWithCliError } from "./exit.ts";

type GpuChoice = "auto" | "cpu" | "cuda" | "vulkan" | "metal";

export async function runEngineInfo(flags: { gpu: GpuChoice; json?: boolean }): Promise<void> {
  try {
    const binary = await inspectBinary(flags.gpu);
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(binary, null, 2)}\n`);
      return;
    }
    const lines = [
      `binary:       ${binary.buildType === "localBuild" ? "local build (compiled on this machine)" : "prebuilt (shipped with node-llama-cpp)"}`,
      `llama.cpp:    ${binary.llamaCpp}`,
      `backend:      ${binary.gpu === false ? "CPU" : binary.gpu}`,
      `OpenMP:       ${binary.openmp ? "yes" : "no"}`,
      `CPU features: ${binary.cpuFeatures.join(" ")}`,
      `math cores:   ${binary.cpuMathCores}`,
    ];
    if (binary.buildType === "prebuilt" && binary.gpu === false) {
      lines.push("", "A native build is usually faster on CPUs (OpenMP threads, -march=native): phiserve engine build");
    }
    process.stdout.write(`${lines.join("\n")}\n`);
  } catch (error) {
    exitWithCliError(error);
  }
}

export async function runEngineBuild(flags: { gpu: GpuChoice }): Promise<void> {
  try {
    for (const [tool, hint] of [["cmake", "cmake"], ["c++", "g++"]] as const) {
      try {
        execFileSync(tool, ["--version"], { stdio: "ignore" });
      } catch {
        throw new CliError(`'${tool}' is not installed: a native build needs cmake and a C++ compiler (Debian/Ubuntu: apt-get install cmake ${hint}). The prebuilt binary keeps working meanwhile.`);
      }
    }
    const gpu = flags.gpu === "cpu" ? "false" : flags.gpu;
    process.stderr.write(`Compiling node-llama-cpp's bundled llama.cpp for this machine (gpu: ${gpu}); several minutes…\n`);
    const code = await buildNative(gpu, process.stderr);
    if (code !== 0) throw new CliError(`the native build failed (exit ${code}); the prebuilt binary stays in use`);
    await runEngineInfo({ gpu: flags.gpu });
  } catch (error) {
    exitWithCliError(error);
  }
}
