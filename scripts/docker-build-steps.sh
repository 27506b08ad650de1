#!/usr/bin/env bash
# Runs the Dockerfile's build steps without Docker (CI has no daemon; docs/DEPLOY.md "What was verified"),
# then starts the server from the result the way the image would, and checks it:
#
#   bash scripts/docker-build-steps.sh       # from the repository root (CI: .ci/run)
#
# The Dockerfile itself is read, not a copy of its steps: each stage gets a folder standing for its
# root file system; WORKDIR, ENV, COPY (from the build context, filtered by .dockerignore, or
# --from another stage) and RUN are carried out in it, in order. What cannot be done without the base
# image is skipped and listed: RUN steps that install Debian packages (apt-get: the host provides
# python3, make and g++) and RUN steps outside WORKDIR (the runtime stage's mkdir/chown of the
# volumes, done here for the VOLUME folders instead). The Node version is the host's, not the
# image's. Then, in the last stage's folder: the image's own CLI makes a tiny test model on the
# models volume, ENTRYPOINT + CMD (plus --host 127.0.0.1, a free port, the model and a key) start
# the server as an unprivileged user (the image's USER when it exists here, else nobody), the
# HEALTHCHECK command must pass (its port rewritten to that free port), a chat completion must
# answer 200, and SIGTERM must stop it with exit 0. Also checked: the runtime stage has no src/, no
# tsx, and no package that `npm ls --omit=dev` does not need.
#
# npm installs with prefer-offline (the npm cache is warm after the project's own install). Works in
# a private temporary folder, removed at the end (PHISERVE_KEEP_DOCKER_STEPS=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d "${TMPDIR:-/tmp}/phiserve-docker-steps.XXXXXX")"
chmod 755 "$work" # the unprivileged user must reach the stage folders inside
cleanup() {
  if [ "${PHISERVE_KEEP_DOCKER_STEPS:-0}" = 1 ]; then echo "docker-build-steps: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

export npm_config_prefer_offline=true
node --input-type=module - "$PWD" "$work" <<'NODE'
import { spawn, spawnSync } from "node:child_process";
import { chownSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, posix, relative } from "node:path";

const [context, work] = process.argv.slice(2);
const log = (line) => process.stderr.write(`docker-build-steps: ${line}\n`);
let server; // the started server, stopped by fail() too (process.exit skips finally blocks)
const fail = (line) => {
  log(`FAILED: ${line}`);
  if (server && server.exitCode === null && server.signalCode === null) server.kill("SIGKILL");
  process.exit(1);
};
const ran = [];
const skipped = [];

// --- The Dockerfile: logical lines (continuations joined, comments dropped), instruction + arguments.
function parseDockerfile(text) {
  const steps = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    if (/^\s*#/.test(raw) && pending === "") continue;
    if (/^\s*#/.test(raw)) continue; // a comment inside a continued instruction is dropped, as Docker does
    const line = raw.replace(/\s+$/, "");
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = "";
    if (full === "") continue;
    const m = /^(\S+)\s*(.*)$/.exec(full);
    steps.push({ instruction: m[1].toUpperCase(), args: m[2] });
  }
  return steps;
}

const KNOWN = new Set(["FROM", "ARG", "ENV", "WORKDIR", "COPY", "RUN", "USER", "VOLUME", "EXPOSE", "STOPSIGNAL", "HEALTHCHECK", "ENTRYPOINT", "CMD", "LABEL"]);

/** Options (`--from=build`) and the rest of an instruction's arguments. */
function splitOptions(args) {
  const options = {};
  let rest = args;
  for (;;) {
    const m = /^--([a-z-]+)=(\S+)\s+/.exec(rest);
    if (!m) return { options, rest };
    options[m[1]] = m[2];
    rest = rest.slice(m[0].length);
  }
}

function jsonOrShell(args) {
  return args.trim().startsWith("[") ? JSON.parse(args) : ["/bin/sh", "-c", args];
}

/** ENV key=value pairs (values may be double-quoted). */
function parseEnv(args) {
  const pairs = {};
  const re = /(\w+)=("(?:[^"\\]|\\.)*"|\S*)/g;
  let m;
  while ((m = re.exec(args))) pairs[m[1]] = m[2].startsWith('"') ? JSON.parse(m[2]) : m[2];
  if (Object.keys(pairs).length === 0) fail(`ENV ${args}: only the key=value form is supported`);
  return pairs;
}

// --- .dockerignore: Docker's rules (last matching pattern wins; a pattern matching a parent folder matches its files; ! re-includes).
const ignorePatterns = existsSync(join(context, ".dockerignore"))
  ? readFileSync(join(context, ".dockerignore"), "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"))
      .map((l) => ({ negate: l.startsWith("!"), re: globToRegExp(posix.normalize(l.replace(/^!/, "")).replace(/^\/+|\/+$/g, "")) }))
  : [];

function globToRegExp(glob) {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*" && glob[i + 1] === "*") {
      re += ".*";
      i += 1;
      if (glob[i + 1] === "/") i += 1;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

function isIgnored(path) {
  const parts = path.split("/");
  let ignored = false;
  for (const { negate, re } of ignorePatterns) {
    for (let n = 1; n <= parts.length; n++) {
      if (re.test(parts.slice(0, n).join("/"))) {
        ignored = !negate;
        break;
      }
    }
  }
  return ignored;
}

/** Copies `source` (a file or folder of the build context) to `target`, leaving out what .dockerignore excludes. */
function copyFromContext(source, target, named = true) {
  const rel = relative(context, source).split("\\").join("/");
  const stat = statSync(source, { throwIfNoEntry: false });
  if (!stat) fail(`COPY: ${rel} is not in the build context`);
  if (stat.isDirectory()) {
    for (const entry of readdirSync(source)) copyFromContext(join(source, entry), join(target, entry), false);
    return;
  }
  if (isIgnored(rel)) {
    if (named) fail(`COPY: ${rel} is excluded by .dockerignore, so Docker would not find it`);
    return;
  }
  mkdirSync(dirname(target), { recursive: true });
  cpSync(source, target);
}

// --- The build.
const steps = parseDockerfile(readFileSync(join(context, "Dockerfile"), "utf8"));
const args = {};
const stages = [];
let stage;
const inStage = (path) => join(stage.root, path);

for (const step of steps) {
  const { instruction } = step;
  if (!KNOWN.has(instruction)) fail(`${instruction}: not an instruction this script can run; keep the Dockerfile to ${[...KNOWN].join(", ")}`);
  const expanded = step.args.replace(/\$\{(\w+)\}/g, (_, name) => stage?.env[name] ?? args[name] ?? "");
  if (instruction === "ARG") {
    const [name, value] = step.args.split("=");
    if (!stage) args[name] = value ?? "";
    continue;
  }
  if (instruction === "FROM") {
    const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(expanded);
    stage = { name: m[2] ?? String(stages.length), base: m[1], root: join(work, `stage-${stages.length}`), env: {}, workdir: "/", user: "root", volumes: [], expose: [], healthcheck: undefined, entrypoint: [], cmd: [] };
    mkdirSync(stage.root, { recursive: true });
    stages.push(stage);
    log(`stage ${stage.name} (base ${stage.base}: not pulled; the host's Node ${process.version} stands in for it)`);
    continue;
  }
  if (!stage) fail(`${instruction} before FROM`);
  const where = `${stage.name}: ${instruction} ${step.args.replace(/\s+/g, " ")}`.slice(0, 140);
  switch (instruction) {
    case "ENV":
      Object.assign(stage.env, parseEnv(expanded));
      ran.push(where);
      break;
    case "WORKDIR":
      stage.workdir = posix.resolve(stage.workdir, expanded);
      mkdirSync(inStage(stage.workdir), { recursive: true });
      ran.push(where);
      break;
    case "COPY": {
      const { options, rest } = splitOptions(expanded);
      const parts = jsonOrShell(rest)[0] === "/bin/sh" ? rest.split(/\s+/) : JSON.parse(rest);
      const dest = posix.resolve(stage.workdir, parts.at(-1));
      const from = options.from === undefined ? undefined : stages.find((s) => s.name === options.from);
      if (options.from !== undefined && !from) fail(`${where}: no stage ${options.from}`);
      for (const src of parts.slice(0, -1)) {
        const isDirTarget = parts.at(-1).endsWith("/") || parts.length > 2;
        const name = posix.basename(src.replace(/\/+$/, ""));
        const target = inStage(isDirTarget && !src.endsWith("/") ? posix.join(dest, name) : dest);
        if (from) {
          const source = join(from.root, src);
          if (!existsSync(source)) fail(`${where}: ${src} does not exist in stage ${from.name}`);
          mkdirSync(dirname(target), { recursive: true });
          cpSync(source, target, { recursive: true, verbatimSymlinks: true });
        } else copyFromContext(join(context, src), target);
      }
      ran.push(where);
      break;
    }
    case "RUN": {
      const command = expanded;
      if (/\bapt-get\b/.test(command)) {
        skipped.push(`${where} (Debian packages of the base image; the host provides the tools)`);
        break;
      }
      if (/(^|\s)\/(?!dev\/null)/.test(command.replace(/\S+=\S+/g, ""))) {
        skipped.push(`${where} (outside WORKDIR: the VOLUME folders are made here instead)`);
        break;
      }
      log(`RUN ${command} (in ${stage.name}:${stage.workdir})`);
      const result = spawnSync("/bin/sh", ["-c", command], { cwd: inStage(stage.workdir), stdio: ["ignore", 2, 2], env: { ...process.env, ...stage.env } });
      if (result.status !== 0) fail(`${where} exited with ${result.status}`);
      ran.push(where);
      break;
    }
    case "USER":
      stage.user = expanded;
      ran.push(where);
      break;
    case "VOLUME":
      stage.volumes.push(...jsonOrShell(expanded).filter((v) => v !== "/bin/sh" && v !== "-c"));
      break;
    case "EXPOSE":
      stage.expose.push(...expanded.split(/\s+/));
      break;
    case "HEALTHCHECK": {
      const m = /^(.*?)CMD\s+(.*)$/.exec(expanded);
      if (!m) fail(`${where}: HEALTHCHECK without CMD`);
      stage.healthcheck = { options: m[1].trim(), command: jsonOrShell(m[2]) };
      break;
    }
    case "ENTRYPOINT":
      stage.entrypoint = jsonOrShell(expanded);
      break;
    case "CMD":
      stage.cmd = jsonOrShell(expanded);
      break;
    default:
      break; // STOPSIGNAL, LABEL: nothing to do outside a container
  }
}

const final = stages.at(-1);
if (!final || stages.length < 2) fail("the Dockerfile must have a build stage and a runtime stage");
const app = join(final.root, final.workdir);
log(`runtime stage ${final.name}: ${final.workdir} holds ${readdirSync(app).sort().join(", ")}`);

// --- What the runtime stage must not carry.
for (const forbidden of ["node_modules/tsx", "src"]) {
  if (existsSync(join(app, forbidden))) fail(`the runtime stage has ${forbidden}`);
}
// Production dependencies only: every package in node_modules is in the tree `npm ls --omit=dev` walks
// (a devDependency stays only when a production package needs it, as node-llama-cpp's typescript peer).
const tree = spawnSync("npm", ["ls", "--omit=dev", "--all", "--parseable"], { cwd: app, encoding: "utf8" });
const needed = new Set(tree.stdout.split("\n").filter(Boolean).map((p) => relative(app, p).split("\\").join("/")));
const installed = readdirSync(join(app, "node_modules")).filter((n) => !n.startsWith("."))
  .flatMap((n) => (n.startsWith("@") ? readdirSync(join(app, "node_modules", n)).map((m) => `node_modules/${n}/${m}`) : [`node_modules/${n}`]));
const extraneous = installed.filter((p) => !needed.has(p));
if (needed.size === 0 || extraneous.length > 0) fail(`the runtime stage has packages no production dependency needs: ${extraneous.join(", ") || tree.stderr}`);
log(`runtime stage: ${installed.length} packages in node_modules, all production dependencies`);
if (final.user === "root" || final.user === "0") fail("the runtime stage runs as root (USER)");
if (!final.healthcheck || !final.healthcheck.command.join(" ").includes("/health")) fail("no HEALTHCHECK on /health");

// --- Who runs it: the image's USER when it exists on this machine, else nobody; as root only when not root here.
const isRoot = process.getuid?.() === 0;
let uid = process.getuid?.() ?? 0;
let gid = process.getgid?.() ?? 0;
let runAs = "the current user";
if (isRoot) {
  const id = (flag, name) => spawnSync("id", [flag, name], { encoding: "utf8" });
  const user = id("-u", final.user).status === 0 ? final.user : "nobody";
  uid = Number(id("-u", user).stdout.trim());
  gid = Number(id("-g", user).stdout.trim());
  runAs = `${user} (uid ${uid}; the image's USER is ${final.user})`;
  if (uid === 0) fail(`${user} is root here`);
}
// Volumes: the folders the runtime stage's skipped mkdir/chown would make, owned by the user.
for (const volume of final.volumes) {
  mkdirSync(inStage(volume), { recursive: true });
  if (isRoot) chownSync(inStage(volume), uid, gid);
}
const mapPath = (value) => (value.startsWith("/") ? join(final.root, value) : value);
const env = { PATH: process.env.PATH, HOME: join(final.root, "tmp-home"), TMPDIR: process.env.TMPDIR ?? "/tmp" };
for (const [k, v] of Object.entries(final.env)) env[k] = mapPath(v);
mkdirSync(env.HOME, { recursive: true });
if (isRoot) chownSync(env.HOME, uid, gid);
const asUser = { uid, gid, cwd: app, env };

const port = await new Promise((resolve) => {
  const server = createServer().listen(0, "127.0.0.1", () => {
    const { port: p } = server.address();
    server.close(() => resolve(p));
  });
});
const entry = [...final.entrypoint, ...final.cmd];
const command = entry[0] === "node" ? process.execPath : entry[0];
const modelsVolume = final.volumes.find((v) => v === "/models") ?? final.volumes[0];
if (!modelsVolume) fail("the runtime stage declares no volume for models");

log(`as ${runAs}: ${final.entrypoint.join(" ")} test-model --family phi3 --out ${modelsVolume}/tiny.gguf`);
const made = spawnSync(command, [...entry.slice(1, final.entrypoint.length), "test-model", "--family", "phi3", "--out", `${mapPath(modelsVolume)}/tiny.gguf`], { ...asUser, stdio: ["ignore", 2, 2] });
if (made.status !== 0) fail(`test-model exited with ${made.status}`);

const key = "docker-steps-key-0123456789abcdef";
const serveArgs = [...entry.slice(1), "--host", "127.0.0.1", "--port", String(port), "--model", `${mapPath(modelsVolume)}/tiny.gguf`, "--model-name", "phi-3.5-mini-instruct", "--api-key", key];
log(`as ${runAs}: ${entry.join(" ")} --host 127.0.0.1 --port ${port} --model ${modelsVolume}/tiny.gguf …`);
server = spawn(command, serveArgs, { ...asUser, stdio: ["ignore", "pipe", "pipe"] });
const exited = new Promise((resolve) => server.once("exit", (code, signal) => resolve({ code, signal })));
let stdout = "";
let stderr = "";
server.stdout.on("data", (d) => (stdout += d));
server.stderr.on("data", (d) => (stderr += d));
const stop = async () => {
  if (server.exitCode === null && server.signalCode === null) server.kill("SIGKILL");
  await exited;
};
try {
  const deadline = Date.now() + 120_000;
  while (!stdout.includes("phiserve ready:")) {
    if (server.exitCode !== null) fail(`the server exited with ${server.exitCode} before ready\n${stderr}`);
    if (Date.now() > deadline) fail(`the server was not ready within 120 s\n${stderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  log(stdout.trim());
  const health = final.healthcheck.command.map((a) => a.replaceAll(":8080", `:${port}`));
  const check = spawnSync(health[0] === "node" ? process.execPath : health[0], health.slice(1), { ...asUser, stdio: ["ignore", 2, 2], timeout: 10_000 });
  if (check.status !== 0) fail(`the HEALTHCHECK command (${final.healthcheck.options}) exited with ${check.status}`);
  log(`HEALTHCHECK ${final.healthcheck.options}: exit 0`);
  const res = await fetch(`http://127.0.0.1:${port}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "api-key": key },
    body: JSON.stringify({ messages: [{ role: "user", content: "Say hi" }], max_tokens: 8 }),
  });
  const body = await res.json();
  if (res.status !== 200 || typeof body.usage?.prompt_tokens !== "number") fail(`POST /chat/completions answered ${res.status}: ${JSON.stringify(body)}`);
  log(`POST /chat/completions: 200, usage ${JSON.stringify(body.usage)}`);
  server.kill("SIGTERM"); // the exit listener is attached above
  const { code, signal } = await exited;
  if (code !== 0) fail(`SIGTERM: the server exited with ${code ?? signal}\n${stderr}`);
  log("SIGTERM: drained and exited 0");
} finally {
  await stop();
}
log(`ran ${ran.length} steps:\n  ${ran.join("\n  ")}`);
log(`not run (${skipped.length}):\n  ${skipped.join("\n  ")}`);
log("ok: the Dockerfile's steps built a runtime folder that serves as a non-root user and passes its HEALTHCHECK");
NODE
