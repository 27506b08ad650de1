#!/usr/bin/env bash
# Builds llama-server, the peer the engine benchmarks compare with, from the llama.cpp source that
# node-llama-cpp bundles (the same release phiserve runs), as llama.cpp's own docs build it for a CPU:
# -DGGML_NATIVE=ON (so -march=native, and OpenMP), without AMX as phiserve's own native build
# (docs/ENGINE-NOTES.md "Native build": this release's AMX kernels crash where the CPU has AMX). Needs cmake and a C++ compiler (Debian: cmake g++).
# The source comes from node-llama-cpp's git bundle (`phiserve engine build` or
# `npx node-llama-cpp source download` puts it in node_modules/node-llama-cpp/llama/llama.cpp).
# Prints the binary's path. About 8 minutes on 2 cores; a second run reuses the build.
set -euo pipefail
cd "$(dirname "$0")/.."
src=node_modules/node-llama-cpp/llama/llama.cpp
out=.cache/llama-server
if [ ! -f "$src/CMakeLists.txt" ]; then
  echo "build-llama-server: no llama.cpp source at $src; run 'npx phiserve engine build' (or 'npx node-llama-cpp source download') first" >&2
  exit 1
fi
command -v cmake >/dev/null || { echo "build-llama-server: cmake is missing (Debian: apt-get install cmake g++)" >&2; exit 1; }
if [ ! -x "$out/bin/llama-server" ]; then
  export CFLAGS="${CFLAGS:-} -mno-amx-tile -mno-amx-int8 -mno-amx-bf16" CXXFLAGS="${CXXFLAGS:-} -mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  cmake -S "$src" -B "$out" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON >&2
  cmake --build "$out" --target llama-server -j "$(nproc)" >&2
fi
echo "$PWD/$out/bin/llama-server"
