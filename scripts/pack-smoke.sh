#!/usr/bin/env bash
# Checks what a user of the published package gets: `npm pack` → install the tarball into an empty
# folder → `npx phiserve test-model` → `npx phiserve serve --model tiny.gguf` answers one chat
# completion (200 with usage) → SIGTERM stops it with exit 0. The installed package must run its
# compiled dist/ with no TypeScript loader: the check fails if tsx or typescript got installed.
#
#   bash scripts/pack-smoke.sh            # from the repository root (CI: .ci/run)
#
# Installs with --prefer-offline (the npm cache is warm after the project's own install). Works in a
# private temporary folder, removed at the end (PHISERVE_KEEP_SMOKE=1 keeps it). Progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'pack-smoke: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/phiserve-pack-smoke.XXXXXX")"
npx_pid=""
cleanup() {
  if [ -n "$npx_pid" ]; then kill -TERM -- "-$npx_pid" 2>/dev/null || true; fi
  if [ "${PHISERVE_KEEP_SMOKE:-0}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

log "npm pack (the prepare script builds dist/)"
npm pack --pack-destination "$work" --silent >/dev/null
tarballs=("$work"/phiserve-*.tgz)
[ -f "${tarballs[0]}" ] || die "npm pack wrote no tarball"
tarball="${tarballs[0]}"
tar -tzf "$tarball" >"$work/contents.txt"
grep -qx 'package/dist/cli/main.js' "$work/contents.txt" || die "the tarball has no dist/cli/main.js"
grep -qx 'package/bin/phiserve.cjs' "$work/contents.txt" || die "the tarball has no bin/phiserve.cjs"
grep -qx 'package/dist/web/playground/index.html' "$work/contents.txt" || die "the tarball has no playground"
# Every SQL migration of every store ships, next to its compiled store (a missing one would leave databases behind).
for migration in src/store/*/migrations/*.sql; do
  grep -qx "package/dist/${migration#src/}" "$work/contents.txt" || die "the tarball has no dist/${migration#src/}"
done
if grep -q '^package/src/' "$work/contents.txt"; then die "the tarball ships src/"; fi
log "$(basename "$tarball"): $(wc -l <"$work/contents.txt") files, $(du -k "$tarball" | cut -f1) KiB"

app="$work/app"
mkdir "$app"
cd "$app"
log "npm install the tarball into an empty folder"
# onnxruntime-node's postinstall fetches CUDA libraries from NuGet unless told to skip; the CPU
# binaries ship in the npm package (the project's own .npmrc says the same for its install).
export ONNXRUNTIME_NODE_INSTALL=skip
npm install --prefer-offline --no-audit --no-fund --loglevel=error "$tarball" >&2
loaders="$(npm ls --all --parseable tsx typescript 2>/dev/null || true)"
[ -z "$loaders" ] || die "a TypeScript loader or compiler was installed with the package: $loaders"

export PHISERVE_DATA_DIR="$work/data"
npx --no-install phiserve test-model --family phi3 --out tiny.gguf >&2

log "npx phiserve serve --model tiny.gguf --port 0"
# Its own process group (job control), so the cleanup can stop npm, its shell and the server together.
set -m
npx --no-install phiserve serve --model tiny.gguf --port 0 >"$work/stdout.txt" 2>"$work/stderr.txt" &
npx_pid=$!
set +m
url=""
server_pid=""
for _ in $(seq 1 240); do
  url="$(sed -n 's/^phiserve ready: \(http:\/\/[^ ]*\).*/\1/p' "$work/stdout.txt")"
  # The server is npx's grandchild (npm exec → sh → node); its pid is in its log lines.
  server_pid="$(sed -n 's/.*"pid":\([0-9]*\),.*"event":"server.ready".*/\1/p' "$work/stderr.txt")"
  [ -n "$url" ] && [ -n "$server_pid" ] && break
  kill -0 "$npx_pid" 2>/dev/null || { cat "$work/stderr.txt" >&2; die "the server exited before it was ready"; }
  sleep 0.5
done
[ -n "$url" ] && [ -n "$server_pid" ] || { cat "$work/stderr.txt" >&2; die "the server was not ready within 120 s"; }
log "ready at $url"

status="$(curl -sS -o "$work/response.json" -w '%{http_code}' -H 'content-type: application/json' \
  -d '{"messages":[{"role":"user","content":"Say hi"}],"max_tokens":8}' "$url/chat/completions")"
[ "$status" = 200 ] || { cat "$work/response.json" >&2; die "POST /chat/completions answered $status"; }
grep -q '"usage":{"prompt_tokens":[0-9]*,"completion_tokens":[0-9]*' "$work/response.json" || { cat "$work/response.json" >&2; die "the response has no usage"; }

# SIGTERM to the server itself (a signal to npm would not reach it through the shell in between):
# it drains, exits 0, and npx passes that on.
kill -TERM "$server_pid"
code=0
wait "$npx_pid" || code=$?
npx_pid=""
[ "$code" = 0 ] || { cat "$work/stderr.txt" >&2; die "npx phiserve serve exited with $code after SIGTERM"; }
for event in request.completed server.stopping; do
  grep -q "\"event\":\"$event\"" "$work/stderr.txt" || { cat "$work/stderr.txt" >&2; die "no $event line in the server's log"; }
done
log "ok: installed tarball served a chat completion (200, usage) with node $(node --version) and no tsx"
