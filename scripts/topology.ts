/**
 * The multi-replica topology on one machine (docs/DEPLOY.md "Multi-replica topology"): three
 * `phiserve serve` replicas of a tiny test model behind HAProxy, sharing one Redis (quotas) and one
 * PostgreSQL (keys, usage), everything on 127.0.0.1. It drives bounded load through HAProxy,
 * SIGKILLs one replica mid-load, brings it back, and reports the figures that show what the
 * topology promises: quotas exact across replicas, usage rows equal to what clients received, no
 * request lost beyond those in flight on the killed replica, and HAProxy's `/health` checks taking
 * the replica out and back in.
 *
 *   npm run topology            # prints the figures; exit 1 when a check fails
 *
 * PostgreSQL and Redis: PHISERVE_TEST_POSTGRES_URL / PHISERVE_TEST_REDIS_URL when set, else
 * scripts/test-services.sh starts private ones (and stops them after). HAProxy: scripts/haproxy-install.sh
 * (apt-get when missing). Replicas run the TypeScript sources (tsx), or bin/phiserve.cjs with
 * PHISERVE_TEST_CLI=dist. test/integration/topology.test.ts runs {@link runTopology} and asserts the figures.
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { request as httpRequest } from "node:http";
import { createServer, createConnection } from "node:net";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { ensureTestModel } from "../src/model-factory/test-models.ts";

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);

/** Sizes of the run; the defaults keep it to some tens of seconds on 2 cores. */
export interface TopologyOptions {
  /** Replicas behind HAProxy (default 3). */
  replicas?: number;
  /** The quota key's requests per minute (default 8). */
  quotaRpm?: number;
  /** Requests sent at once with the quota key (default 24: 3 × the limit). */
  quotaRequests?: number;
  /** Load requests completed before the kill (default 12). */
  requestsBeforeKill?: number;
  /** Load requests sent once the killed replica is back in HAProxy (default 12). */
  requestsAfterReturn?: number;
  /** Clients sending load at once (default 4). */
  concurrency?: number;
  /** max_tokens of each load request (default 16). */
  maxTokens?: number;
  /** "source" (tsx, default) or "dist" (bin/phiserve.cjs); default PHISERVE_TEST_CLI. */
  cli?: "source" | "dist";
  postgresUrl?: string | undefined;
  redisUrl?: string | undefined;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

/** One state HAProxy reported for the killed replica, from its stats socket. */
export interface HealthSample {
  /** Milliseconds since the SIGKILL. */
  atMs: number;
  /** UP, DOWN, "UP 1/2", "DOWN 1/2", … */
  status: string;
  /** The last check's result: L7OK, L7STS (an HTTP status other than 200), L4CON (refused), … */
  check: string;
  /** The last check's HTTP status, when it got one. */
  checkCode: string;
}

export interface TopologyReport {
  replicas: string[];
  quota: {
    limit: number;
    sent: number;
    admitted: number;
    limited: number;
    other: number;
    admittedByReplica: Record<string, number>;
    limitedByReplica: Record<string, number>;
  };
  load: {
    sent: number;
    completed: number;
    /** Clients sending at once: at most this many requests can be outstanding. */
    concurrency: number;
    /** Requests the client did not get a 200 for (status or network error), by seq. */
    failed: { seq: number; outcome: string; server: string; termination: string }[];
    /** Of those, the ones HAProxy's log shows were on the killed replica when it died. */
    failedOnKilled: number;
    /** Sessions HAProxy had open on the killed replica just before the SIGKILL (scur of its stats). */
    sessionsOnKilledBeforeKill: number;
    /** Connection attempts HAProxy retried and sent to another replica (wredis of the backend). */
    redispatched: number;
    completedByReplica: Record<string, number>;
    /** Completed by the returned replica after HAProxy put it back. */
    completedByKilledAfterReturn: number;
  };
  usage: {
    /** Completed requests (both keys) and their token sums as the clients received them. */
    clientRequests: number;
    clientPromptTokens: number;
    clientCompletionTokens: number;
    /** Rows in PostgreSQL for those same request ids and their sums. */
    dbRows: number;
    dbPromptTokens: number;
    dbCompletionTokens: number;
    /** Completed requests without a row, and rows whose tokens differ from the response. */
    missing: string[];
    mismatched: string[];
    /** Rows of requests the client did not receive (in flight on the killed replica). */
    extraRows: number;
    /** All rows of the two keys. */
    totalRows: number;
  };
  health: {
    killed: string;
    /** From the SIGKILL until HAProxy marked the replica DOWN. */
    downAfterMs: number;
    /** From the restart until HAProxy marked it UP again. */
    upAfterRestartMs: number;
    /** Check result when marked down (L4CON: connection refused) and what it saw while the replica loaded. */
    samples: HealthSample[];
    /** HAProxy's own log lines about the replica's state. */
    haproxyStateLines: string[];
  };
  durationMs: number;
}

interface Replica {
  name: string;
  port: number;
  child: ChildProcess | undefined;
  logs: string;
}

interface LoadResult {
  seq: number;
  outcome: string;
  server: string;
  requestId: string;
  promptTokens: number;
  completionTokens: number;
  key: "quota" | "load";
  endedAt: number;
}

const MODEL_NAME = "phi-3.5-mini-instruct";

/** Runs the whole topology and returns its figures; everything it started is stopped, even on failure. */
export async function runTopology(options: TopologyOptions = {}): Promise<TopologyReport> {
  const o = {
    replicas: options.replicas ?? 3,
    quotaRpm: options.quotaRpm ?? 8,
    quotaRequests: options.quotaRequests ?? 24,
    requestsBeforeKill: options.requestsBeforeKill ?? 12,
    requestsAfterReturn: options.requestsAfterReturn ?? 12,
    concurrency: options.concurrency ?? 4,
    maxTokens: options.maxTokens ?? 16,
    cli: options.cli ?? (process.env.PHISERVE_TEST_CLI === "dist" ? "dist" : "source"),
    log: options.log ?? (() => {}),
  };
  const started = Date.now();
  const dir = await mkdtemp(join(tmpdir(), "phiserve-topology-"));
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const services = await ensureServices(options, dir, o.log);
    cleanups.push(services.stop);
    const haproxyBin = await ensureHaproxy(o.log);
    const model = await ensureTestModel();
    const database = await createDatabase(services.postgresUrl);
    cleanups.push(database.drop);
    const deployment = `topology-${randomBytes(4).toString("hex")}`; // a fresh quota scope in Redis
    const quotaKey = await createKey(o.cli, database.url, ["--name", "topology-quota", "--rpm", String(o.quotaRpm)]);
    const loadKey = await createKey(o.cli, database.url, ["--name", "topology-load", "--rpm", "5000", "--tpm", "5000000"]);

    const replicas: Replica[] = [];
    for (let i = 1; i <= o.replicas; i++) replicas.push({ name: `r${i}`, port: await freePort(), child: undefined, logs: "" });
    const serveArgs = (replica: Replica) => [
      "serve", "--host", "127.0.0.1", "--port", String(replica.port), "--gpu", "cpu", "--model", model, "--model-name", MODEL_NAME,
      "--deployment", deployment, "--db", database.url, "--redis", services.redisUrl, "--parallel", "2", "--threads", "1",
      "--max-connections-per-client", "0", "--drain-timeout", "10", "--log-level", "warn",
    ];
    cleanups.push(async () => {
      await Promise.all(replicas.map((r) => stopReplica(r, "SIGKILL")));
    });
    await Promise.all(replicas.map((r) => startReplica(o.cli, r, serveArgs(r), dir)));
    o.log(`replicas ${replicas.map((r) => `${r.name}=127.0.0.1:${r.port}`).join(" ")} (deployment ${deployment}, model ${MODEL_NAME} tiny)`);

    const haproxy = await startHaproxy(haproxyBin, dir, replicas);
    cleanups.push(haproxy.stop);
    // PHISERVE_TOPOLOGY_LOGS=DIR keeps HAProxy's output and each replica's log there (written last, even on failure).
    const logsDir = process.env.PHISERVE_TOPOLOGY_LOGS;
    if (logsDir) {
      cleanups.unshift(async () => {
        await writeFile(join(logsDir, "haproxy.log"), haproxy.output());
        for (const r of replicas) await writeFile(join(logsDir, `${r.name}.log`), r.logs);
      });
    }
    const stats = (): Promise<StatRow[]> => showStat(haproxy.socket);
    const allUp = async (): Promise<boolean> => {
      const rows = await stats();
      return replicas.every((r) => statOf(rows, r.name).status === "UP");
    };
    await waitFor("every replica UP in HAProxy", 60_000, allUp)
      .catch(async (error: unknown) => {
        const rows = (await stats()).map((r) => `${r.svname} ${r.status} ${r.checkStatus} ${r.checkCode}`);
        throw new Error(`${String(error)}: ${rows.join("; ")}\n${haproxy.output()}`);
      });
    o.log(`haproxy on ${haproxy.url}, every replica UP`);

    // 1. Quotas: one key limited to quotaRpm, quotaRequests sent at once through HAProxy.
    const client = new LoadClient(haproxy.url, o.maxTokens);
    const quotaResults = await Promise.all(Array.from({ length: o.quotaRequests }, () => client.send(quotaKey.key, "quota", 4)));
    const quota = {
      limit: o.quotaRpm,
      sent: quotaResults.length,
      admitted: quotaResults.filter((r) => r.outcome === "200").length,
      limited: quotaResults.filter((r) => r.outcome === "429").length,
      other: quotaResults.filter((r) => r.outcome !== "200" && r.outcome !== "429").length,
      admittedByReplica: countBy(quotaResults.filter((r) => r.outcome === "200"), (r) => r.server),
      limitedByReplica: countBy(quotaResults.filter((r) => r.outcome === "429"), (r) => r.server),
    };
    o.log(`quota: limit ${quota.limit} rpm, sent ${quota.sent} at once → ${quota.admitted} admitted ${JSON.stringify(quota.admittedByReplica)}, ${quota.limited} got 429 ${JSON.stringify(quota.limitedByReplica)}, ${quota.other} other${quota.other ? ` ${JSON.stringify(countBy(quotaResults, (r) => r.outcome))}` : ""}`);
    if (quota.admitted === 0) throw new Error(`no request was admitted: ${JSON.stringify(countBy(quotaResults, (r) => r.outcome))}`);

    // 2. Load, SIGKILL of one replica mid-load, its return.
    const victim = replicas[1] ?? replicas[0]!;
    const load = new LoadDriver(client, loadKey.key, o.concurrency);
    cleanups.push(() => load.stop()); // on a failure below too: its clients would otherwise loop on refused connections
    load.start();
    await waitFor(`${o.requestsBeforeKill} load requests completed`, 120_000, async () => load.completed() >= o.requestsBeforeKill);
    // Kill while the victim has work, so the figures cover requests in flight on it (bounded wait).
    await waitFor("a request in flight on the victim", 10_000, async () => statOf(await stats(), victim.name).scur > 0).catch(() => undefined);
    const sessionsOnKilledBeforeKill = statOf(await stats(), victim.name).scur;
    const killedAt = Date.now();
    victim.child?.kill("SIGKILL");
    o.log(`SIGKILL ${victim.name} (pid ${victim.child?.pid}) with ${sessionsOnKilledBeforeKill} sessions open on it just before, after ${load.completed()} completed`);
    const samples: HealthSample[] = [];
    const sample = async (): Promise<HealthSample> => {
      const row = statOf(await stats(), victim.name);
      const s = { atMs: Date.now() - killedAt, status: row.status, check: row.checkStatus, checkCode: row.checkCode };
      const last = samples.at(-1);
      // "* L4CON": a check is running (its code not known yet); only finished checks are recorded.
      if (s.check.startsWith("*")) return s;
      if (!last || last.status !== s.status || last.check !== s.check || last.checkCode !== s.checkCode) samples.push(s);
      return s;
    };
    await waitFor(`${victim.name} DOWN in HAProxy`, 15_000, async () => (await sample()).status === "DOWN", 50);
    const downAfterMs = Date.now() - killedAt;
    const restartAt = Date.now();
    const restarting = startReplica(o.cli, victim, serveArgs(victim), dir);
    await waitFor(`${victim.name} UP again in HAProxy`, 60_000, async () => (await sample()).status === "UP", 50);
    await restarting;
    const upAfterRestartMs = Date.now() - restartAt;
    const returnedAt = Date.now();
    o.log(`${victim.name}: DOWN ${downAfterMs} ms after the SIGKILL, restarted, UP ${upAfterRestartMs} ms after the restart`);
    const sentAtReturn = load.sent();
    await waitFor(`${o.requestsAfterReturn} more load requests`, 120_000, async () => load.sent() >= sentAtReturn + o.requestsAfterReturn);
    await load.stop();
    const loadResults = load.results();
    const backendStats = (await stats()).find((r) => r.pxname === "phiserve" && r.svname === "BACKEND");

    // 3. A clean stop: HAProxy first (its log complete), then the replicas (SIGTERM flushes pending usage writes).
    await haproxy.stop();
    await Promise.all(replicas.map((r) => stopReplica(r, "SIGTERM")));
    const accessLog = haproxy.accessLog();
    const failed = loadResults
      .filter((r) => r.outcome !== "200")
      .map((r) => ({ seq: r.seq, outcome: r.outcome, server: accessLog.get(r.seq)?.server ?? "(no log line)", termination: accessLog.get(r.seq)?.termination ?? "" }));
    const completedLoad = loadResults.filter((r) => r.outcome === "200");
    const loadFigures = {
      sent: loadResults.length,
      concurrency: o.concurrency,
      completed: completedLoad.length,
      failed,
      failedOnKilled: failed.filter((f) => f.server === victim.name && f.termination.startsWith("S")).length,
      sessionsOnKilledBeforeKill,
      redispatched: backendStats?.wredis ?? 0,
      completedByReplica: countBy(completedLoad, (r) => r.server),
      completedByKilledAfterReturn: completedLoad.filter((r) => r.server === victim.name && r.endedAt > returnedAt).length,
    };
    o.log(`load: ${loadFigures.sent} sent by ${o.concurrency} clients, ${loadFigures.completed} completed ${JSON.stringify(loadFigures.completedByReplica)}, ${failed.length} failed (${loadFigures.failedOnKilled} of them in flight on ${victim.name} by HAProxy's log: ${failed.map((f) => `#${f.seq} ${f.outcome} ${f.server} ${f.termination}`).join(", ") || "none"}), ${loadFigures.redispatched} redispatched; ${victim.name} completed ${loadFigures.completedByKilledAfterReturn} after its return`);

    const usage = await compareUsage(database.url, [...quotaResults, ...loadResults], [`key:${quotaKey.id}`, `key:${loadKey.id}`]);
    o.log(`usage: clients received ${usage.clientRequests} completions (${usage.clientPromptTokens} prompt + ${usage.clientCompletionTokens} completion tokens); PostgreSQL has ${usage.dbRows} rows for them (${usage.dbPromptTokens} + ${usage.dbCompletionTokens}), ${usage.missing.length} missing, ${usage.mismatched.length} mismatched, ${usage.extraRows} rows of requests lost with ${victim.name}`);
    const health = { killed: victim.name, downAfterMs, upAfterRestartMs, samples, haproxyStateLines: haproxy.stateLines().filter((l) => l.includes(`/${victim.name} `)) };
    o.log(`health (${victim.name}, ms after SIGKILL): ${samples.map((s) => `${s.atMs} ${s.status} [${s.check}${s.checkCode ? ` ${s.checkCode}` : ""}]`).join(" → ")}`);
    return { replicas: replicas.map((r) => r.name), quota, load: loadFigures, usage, health, durationMs: Date.now() - started };
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => o.log(`cleanup failed: ${String(error)}`));
    await rm(dir, { recursive: true, force: true });
  }
}

/** The checks the figures must pass: an empty list means the topology kept every promise. */
export function checkReport(report: TopologyReport): string[] {
  const problems: string[] = [];
  const { quota, load, usage, health } = report;
  if (quota.admitted !== quota.limit) problems.push(`quota: ${quota.admitted} admitted, limit ${quota.limit}`);
  if (quota.limited !== quota.sent - quota.limit) problems.push(`quota: ${quota.limited} got 429, expected ${quota.sent - quota.limit}`);
  if (new Set([...Object.keys(quota.admittedByReplica), ...Object.keys(quota.limitedByReplica)]).size < 2) problems.push("quota: the requests did not reach several replicas");
  if (load.failed.length !== load.failedOnKilled) problems.push(`load: ${load.failed.length - load.failedOnKilled} requests lost that were not in flight on ${health.killed}`);
  if (load.completedByKilledAfterReturn === 0) problems.push(`load: ${health.killed} served nothing after its return`);
  if (usage.missing.length > 0 || usage.mismatched.length > 0) problems.push(`usage: ${usage.missing.length} missing, ${usage.mismatched.length} mismatched rows`);
  if (usage.dbPromptTokens !== usage.clientPromptTokens || usage.dbCompletionTokens !== usage.clientCompletionTokens) problems.push("usage: token sums differ");
  if (usage.extraRows > load.failedOnKilled) problems.push(`usage: ${usage.extraRows} rows of requests nobody received`);
  if (!health.samples.some((s) => s.status === "DOWN")) problems.push("health: the killed replica was never marked DOWN");
  if (health.samples.at(-1)?.status !== "UP") problems.push("health: the replica did not come back UP");
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Services: PostgreSQL, Redis, HAProxy

/**
 * PostgreSQL and Redis: the given URLs, else PHISERVE_TEST_POSTGRES_URL / PHISERVE_TEST_REDIS_URL, else
 * private servers from scripts/test-services.sh (data under `dir`; installed with apt-get when missing).
 */
export async function ensureServices(
  options: Pick<TopologyOptions, "postgresUrl" | "redisUrl">,
  dir: string,
  log: (line: string) => void = () => {},
): Promise<{ postgresUrl: string; redisUrl: string; stop: () => Promise<void> }> {
  const postgresUrl = options.postgresUrl ?? process.env.PHISERVE_TEST_POSTGRES_URL;
  const redisUrl = options.redisUrl ?? process.env.PHISERVE_TEST_REDIS_URL;
  if (postgresUrl && redisUrl) return { postgresUrl, redisUrl, stop: async () => {} };
  await chmod(dir, 0o755); // as root, PostgreSQL runs as the postgres user, which must reach its data folder inside
  const env = { ...process.env, PHISERVE_TEST_SERVICES_DIR: join(dir, "services") };
  log("starting PostgreSQL and Redis (scripts/test-services.sh)");
  const { stdout } = await run("bash", [join(REPO_ROOT, "scripts/test-services.sh")], { env });
  const pgMatch = /PHISERVE_TEST_POSTGRES_URL=(\S+)/.exec(stdout);
  const redisMatch = /PHISERVE_TEST_REDIS_URL=(\S+)/.exec(stdout);
  if (!pgMatch?.[1] || !redisMatch?.[1]) throw new Error(`scripts/test-services.sh printed no URLs: ${stdout}`);
  return {
    postgresUrl: postgresUrl ?? pgMatch[1],
    redisUrl: redisUrl ?? redisMatch[1],
    stop: async () => void (await run("bash", [join(REPO_ROOT, "scripts/test-services.sh"), "stop"], { env })),
  };
}

/** The haproxy binary, installed by scripts/haproxy-install.sh when missing. */
export async function ensureHaproxy(log: (line: string) => void = () => {}): Promise<string> {
  const { stdout, stderr } = await run("bash", [join(REPO_ROOT, "scripts/haproxy-install.sh")]).catch((error: { stderr?: string }) => {
    throw new Error(error.stderr?.trim().split("\n").at(-1) ?? String(error));
  });
  log(stderr.trim());
  return stdout.trim();
}

/** A database of its own for this run (dropped afterwards), so its usage rows are this run's only. */
async function createDatabase(serverUrl: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `phiserve_topology_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: serverUrl });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

interface HaproxyProcess {
  url: string;
  socket: string;
  accessLog(): Map<number, AccessLogEntry>;
  stateLines(): string[];
  /** Everything HAProxy printed (access log, state changes, warnings). */
  output(): string;
  stop(): Promise<void>;
}

/**
 * HAProxy in the foreground (-db) with a config of its own: round robin over the replicas, health
 * checks `GET /health` every 250 ms (2 failures → DOWN, 2 successes → UP), a connection refused
 * retried on another replica (redispatch), `x-served-by` on each answer, and one access-log line per
 * request on stdout naming the client's `x-topology-seq`, the server, the status and the termination state.
 */
async function startHaproxy(bin: string, dir: string, replicas: readonly Replica[]): Promise<HaproxyProcess> {
  const port = await freePort();
  const socket = join(dir, "haproxy.sock");
  const config = `global
  log stdout format raw local0
  stats socket ${socket} mode 600 level admin
  maxconn 512

defaults
  mode http
  log global
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout queue 10s
  # A loaded 2-core machine can take longer than the 250 ms check interval to answer /health.
  timeout check 2s
  retries 3
  option redispatch 1

frontend api
  bind 127.0.0.1:${port}
  http-request capture req.hdr(x-topology-seq) len 16
  log-format "access %[capture.req.hdr(0)] %s %ST %tsc %Tt"
  default_backend phiserve

backend phiserve
  balance roundrobin
  option httpchk GET /health
  http-check expect status 200
  default-server check inter 250ms fastinter 250ms downinter 250ms fall 2 rise 2
  http-response set-header x-served-by %s
${replicas.map((r) => `  server ${r.name} 127.0.0.1:${r.port}`).join("\n")}
`;
  const configFile = join(dir, "haproxy.cfg");
  await writeFile(configFile, config);
  await run(bin, ["-c", "-q", "-f", configFile]);
  const child = spawn(bin, ["-db", "-f", configFile], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  await waitFor("HAProxy's stats socket", 10_000, async () => {
    if (child.exitCode !== null) throw new Error(`haproxy exited with ${child.exitCode}: ${output}`);
    return showStat(socket).then(() => true, () => false);
  });
  return {
    url: `http://127.0.0.1:${port}`,
    socket,
    accessLog() {
      const entries = new Map<number, AccessLogEntry>();
      for (const line of output.split("\n")) {
        const m = /^access (\d+) (\S+) (-?\d+) (\S+) (-?\d+)$/.exec(line);
        if (m) entries.set(Number(m[1]), { server: m[2]!, status: m[3]!, termination: m[4]!, totalMs: Number(m[5]) });
      }
      return entries;
    },
    stateLines: () => output.split("\n").filter((l) => /Server \S+ is (UP|DOWN)/.test(l)),
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM"); // the exit listener is already attached (above)
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** One request in HAProxy's access log (the log-format above). */
interface AccessLogEntry {
  server: string;
  status: string;
  /** Termination state: `----` normal, `SH--` the server closed before sending headers, … */
  termination: string;
  /** Total time (ms; -1 when the client side aborted). */
  totalMs: number;
}

interface StatRow {
  pxname: string;
  svname: string;
  scur: number;
  wredis: number;
  status: string;
  checkStatus: string;
  checkCode: string;
}

/** `show stat` on HAProxy's stats socket, as rows (the CSV's header names the columns). */
async function showStat(socket: string): Promise<StatRow[]> {
  const text = await new Promise<string>((resolve, reject) => {
    const connection = createConnection(socket);
    let out = "";
    // A wedged HAProxy must fail the run, not hang it (the test runner has no timeout).
    connection.setTimeout(5_000, () => connection.destroy(new Error("HAProxy's stats socket did not answer within 5 s")));
    connection.setEncoding("utf8");
    connection.on("connect", () => connection.write("show stat\n"));
    connection.on("data", (d: string) => (out += d));
    connection.on("end", () => resolve(out));
    connection.on("error", reject);
  });
  const lines = text.split("\n").filter((l) => l.length > 0);
  const header = lines[0]?.replace(/^# /, "").split(",") ?? [];
  const column = (cells: string[], name: string): string => cells[header.indexOf(name)] ?? "";
  return lines.slice(1).map((line) => {
    const cells = line.split(",");
    return {
      pxname: column(cells, "pxname"),
      svname: column(cells, "svname"),
      scur: Number(column(cells, "scur")) || 0,
      wredis: Number(column(cells, "wredis")) || 0,
      status: column(cells, "status"),
      checkStatus: column(cells, "check_status"),
      checkCode: column(cells, "check_code"),
    };
  });
}

function statOf(rows: readonly StatRow[], server: string): StatRow {
  const row = rows.find((r) => r.pxname === "phiserve" && r.svname === server);
  if (!row) throw new Error(`HAProxy reports no server ${server}`);
  return row;
}

// ---------------------------------------------------------------------------------------------
// Replicas and keys

function cliArgs(kind: "source" | "dist"): string[] {
  if (kind === "dist") return [join(REPO_ROOT, "bin/phiserve.cjs")];
  return ["--import", import.meta.resolve("tsx"), join(REPO_ROOT, "src/cli/main.ts")];
}

async function createKey(cli: "source" | "dist", db: string, args: string[]): Promise<{ id: string; key: string }> {
  const { stdout } = await run(process.execPath, [...cliArgs(cli), "keys", "create", "--db", db, "--json", ...args]);
  const created = JSON.parse(stdout) as { id: string; key: string };
  return { id: created.id, key: created.key };
}

/** Starts (or restarts) a replica on its fixed port and waits for its ready line. */
async function startReplica(cli: "source" | "dist", replica: Replica, args: string[], dir: string): Promise<void> {
  const child = spawn(process.execPath, [...cliArgs(cli), ...args], {
    env: { ...process.env, PHISERVE_DATA_DIR: join(dir, `data-${replica.name}`) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  replica.child = child;
  replica.logs = "";
  child.stderr!.on("data", (d: Buffer) => (replica.logs += d.toString()));
  await new Promise<void>((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => reject(new Error(`${replica.name} not ready in 60 s\n${replica.logs}`)), 60_000);
    child.stdout!.on("data", (d: Buffer) => {
      stdout += d.toString();
      if (stdout.includes("phiserve ready:")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${replica.name} exited (${code ?? signal}) before ready\n${replica.logs}`));
    });
  });
}

/** Stops a replica (SIGTERM: drain, flush usage, exit 0) and waits for its exit; SIGKILL after 30 s. */
async function stopReplica(replica: Replica, signal: "SIGTERM" | "SIGKILL"): Promise<void> {
  const child = replica.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------
// Load

/** Sends chat requests through HAProxy, each numbered in `x-topology-seq` so HAProxy's log names it. */
class LoadClient {
  private seq = 0;

  constructor(
    private readonly url: string,
    private readonly maxTokens: number,
  ) {}

  async send(key: string, kind: "quota" | "load", maxTokens = this.maxTokens): Promise<LoadResult> {
    const seq = ++this.seq;
    const base = { seq, server: "", requestId: "", promptTokens: 0, completionTokens: 0, key: kind };
    try {
      const body = JSON.stringify({ messages: [{ role: "user", content: `Request ${seq}: say something` }], max_tokens: maxTokens });
      const res = await postOnce(`${this.url}/chat/completions`, { "content-type": "application/json", "api-key": key, "x-topology-seq": String(seq) }, body);
      const parsed = (res.status === 200 ? JSON.parse(res.body) : undefined) as { usage?: { prompt_tokens: number; completion_tokens: number } } | undefined;
      return {
        ...base,
        outcome: String(res.status),
        server: res.headers["x-served-by"] ?? "",
        requestId: res.headers["x-request-id"] ?? "",
        promptTokens: parsed?.usage?.prompt_tokens ?? (res.status === 200 ? NaN : 0),
        completionTokens: parsed?.usage?.completion_tokens ?? (res.status === 200 ? NaN : 0),
        endedAt: Date.now(),
      };
    } catch (error) {
      return { ...base, outcome: `error: ${error instanceof Error ? error.message : String(error)}`, endedAt: Date.now() };
    }
  }
}

/**
 * One POST on a connection of its own (`connection: close`). Each request being the first on its client
 * connection, HAProxy answers one lost with a dead replica with a 502 and logs it; on a reused keep-alive
 * connection it closed the client's connection without an answer and logged nothing (HAProxy 2.6, seen
 * here), which would leave such a request unattributable (docs/DEPLOY.md "Multi-replica topology").
 */
function postOnce(url: string, headers: Record<string, string>, body: string): Promise<{ status: number; headers: Record<string, string | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: "POST", agent: false, headers: { ...headers, "content-length": String(Buffer.byteLength(body)) } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => {
        const picked: Record<string, string | undefined> = {};
        for (const [name, value] of Object.entries(res.headers)) picked[name] = Array.isArray(value) ? value[0] : value;
        resolve({ status: res.statusCode ?? 0, headers: picked, body: text });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** `concurrency` clients sending load requests back to back until stopped. */
class LoadDriver {
  private readonly done: LoadResult[] = [];
  private issued = 0;
  private stopping = false;
  private workers: Promise<void>[] = [];

  constructor(
    private readonly client: LoadClient,
    private readonly key: string,
    private readonly concurrency: number,
  ) {}

  start(): void {
    this.workers = Array.from({ length: this.concurrency }, async () => {
      while (!this.stopping) {
        this.issued += 1;
        this.done.push(await this.client.send(this.key, "load"));
      }
    });
  }

  sent(): number {
    return this.issued;
  }

  completed(): number {
    return this.done.filter((r) => r.outcome === "200").length;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.workers);
  }

  results(): LoadResult[] {
    return [...this.done].sort((a, b) => a.seq - b.seq);
  }
}

// ---------------------------------------------------------------------------------------------
// Usage

/** Compares the usage rows of the run's two keys with what the clients received, request by request. */
async function compareUsage(databaseUrl: string, results: readonly LoadResult[], principals: readonly string[]): Promise<TopologyReport["usage"]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  let rows: { request_id: string; prompt_tokens: number; completion_tokens: number }[];
  try {
    // Throttled requests are metered too (status 429, no tokens: docs/ADMIN-API.md); these figures are about served ones.
    rows = (await client.query("SELECT request_id, prompt_tokens, completion_tokens FROM usage WHERE principal = ANY($1) AND status <> 429", [principals])).rows;
  } finally {
    await client.end();
  }
  const byId = new Map(rows.map((r) => [r.request_id, r]));
  const received = results.filter((r) => r.outcome === "200");
  const receivedIds = new Set(received.map((r) => r.requestId));
  const missing: string[] = [];
  const mismatched: string[] = [];
  let dbRows = 0;
  let dbPromptTokens = 0;
  let dbCompletionTokens = 0;
  for (const r of received) {
    const row = byId.get(r.requestId);
    if (!row) {
      missing.push(r.requestId);
      continue;
    }
    dbRows += 1;
    dbPromptTokens += row.prompt_tokens;
    dbCompletionTokens += row.completion_tokens;
    if (row.prompt_tokens !== r.promptTokens || row.completion_tokens !== r.completionTokens) mismatched.push(r.requestId);
  }
  return {
    clientRequests: received.length,
    clientPromptTokens: sum(received.map((r) => r.promptTokens)),
    clientCompletionTokens: sum(received.map((r) => r.completionTokens)),
    dbRows,
    dbPromptTokens,
    dbCompletionTokens,
    missing,
    mismatched,
    extraRows: rows.filter((r) => !receivedIds.has(r.request_id)).length,
    totalRows: rows.length,
  };
}

// ---------------------------------------------------------------------------------------------
// Helpers

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function countBy<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)));
}

/** A port nothing listens on now (the kernel's pick). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== "object" || !address) throw new Error("no port");
  return address.port;
}

/** Polls `condition` every `intervalMs` until it holds; throws naming `what` after `timeoutMs`. */
async function waitFor(what: string, timeoutMs: number, condition: () => Promise<boolean>, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const report = await runTopology({ log: (line) => console.log(line) });
  const problems = checkReport(report);
  console.log(`\ntook ${(report.durationMs / 1000).toFixed(1)} s; ${problems.length === 0 ? "every check passed" : `FAILED:\n  ${problems.join("\n  ")}`}`);
  process.exitCode = problems.length === 0 ? 0 : 1;
}
