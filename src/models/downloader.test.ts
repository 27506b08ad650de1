import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import {
  createDownloadProgressBar,
  defaultCacheDir,
  describeDownloadFailure,
  downloadModel,
  findCachedModel,
  ModelDownloadError,
  rewriteDownloadUrl,
  type DownloadProgress,
  type DownloadSource,
} from "./downloader.ts";
import { parseContentRange, sha256FromEtag } from "./http-source.ts";

const DATA = randomBytes((1 << 20) + 4321);
const SHA = sha256(DATA);
const FILE = "phi-test.gguf";

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

interface RecordedRequest {
  path: string;
  range: string | undefined;
  authorization: string | undefined;
}

type Handler = (req: IncomingMessage, res: ServerResponse, requestNumber: number) => void;

interface TestServer {
  origin: string;
  requests: RecordedRequest[];
}

/** Starts a loopback server that records requests; closed (connections included) after the test. */
async function startServer(t: TestContext, handler: Handler): Promise<TestServer> {
  const requests: RecordedRequest[] = [];
  const server: Server = createServer((req, res) => {
    requests.push({ path: req.url ?? "", range: req.headers.range, authorization: req.headers.authorization });
    handler(req, res, requests.length);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { origin: `http://127.0.0.1:${port}`, requests };
}

interface FileBehaviour {
  data?: Buffer;
  etag?: string;
  ignoreRange?: boolean;
  /** On this (1-based) request, send this many body bytes, then drop the connection. */
  cut?: { request: number; bytes: number };
  /** On this request, send this many body bytes, then send nothing more (connection stays open). */
  stall?: { request: number; bytes: number };
}

/** Serves a file with Range support, `ETag` and `X-Linked-Etag` (its SHA-256 unless overridden). */
function fileHandler(behaviour: FileBehaviour = {}): Handler {
  const data = behaviour.data ?? DATA;
  const etag = `"${behaviour.etag ?? sha256(data)}"`;
  return (req, res, n) => {
    const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const start = match === null || behaviour.ignoreRange === true ? 0 : Number(match[1]);
    if (start >= data.length && start > 0) {
      res.writeHead(416, { "content-range": `bytes */${data.length}` }).end();
      return;
    }
    const headers = { "content-length": String(data.length - start), etag, "x-linked-etag": etag, "accept-ranges": "bytes" };
    if (start > 0) res.writeHead(206, { ...headers, "content-range": `bytes ${start}-${data.length - 1}/${data.length}` });
    else res.writeHead(200, headers);
    const body = data.subarray(start);
    if (behaviour.cut?.request === n) {
      res.write(body.subarray(0, behaviour.cut.bytes), () => setTimeout(() => res.socket?.destroy(), 150));
    } else if (behaviour.stall?.request === n) {
      res.write(body.subarray(0, behaviour.stall.bytes));
    } else {
      res.end(body);
    }
  };
}

/** `fetch` that refuses anything but loopback, so no test can reach the internet. */
const loopbackFetch: typeof fetch = (input, init) => {
  const url = input instanceof Request ? input.url : String(input);
  if (!url.startsWith("http://127.0.0.1:")) throw new Error(`test tried to reach ${url}`);
  return fetch(input, init);
};

async function tempCacheDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "phiserve-models-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return path.join(dir, "cache");
}

function source(server: TestServer, extra: Partial<DownloadSource> = {}): DownloadSource {
  return { url: `${server.origin}/microsoft/phi/resolve/main/${FILE}`, fileName: FILE, ...extra };
}

async function rejectsWith(promise: Promise<unknown>, code: ModelDownloadError["code"]): Promise<ModelDownloadError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ModelDownloadError, `expected ModelDownloadError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}, but the download succeeded`);
}

test("full download writes the file and its sidecar, and findCachedModel finds it", async (t) => {
  const server = await startServer(t, fileHandler());
  const cacheDir = await tempCacheDir(t);
  assert.equal(findCachedModel(cacheDir, FILE), undefined);
  const progress: DownloadProgress[] = [];
  const file = await downloadModel(source(server), { cacheDir, fetchImpl: loopbackFetch, onProgress: (p) => progress.push(p) });
  assert.equal(file, path.join(cacheDir, FILE));
  assert.equal(sha256(await readFile(file)), SHA);
  assert.equal(await readFile(`${file}.sha256`, "utf8"), `${SHA}  ${FILE}\n`);
  assert.equal(existsSync(`${file}.partial`), false);
  assert.equal(findCachedModel(cacheDir, FILE), file);
  assert.deepEqual(progress.at(-1), { receivedBytes: DATA.length, totalBytes: DATA.length });
  assert.equal(server.requests.length, 1);
  assert.equal(server.requests[0]?.range, undefined);
});

test("an interrupted download resumes with a Range request", async (t) => {
  const cut = 300_000;
  const server = await startServer(t, fileHandler({ cut: { request: 1, bytes: cut } }));
  const cacheDir = await tempCacheDir(t);
  const first = await rejectsWith(downloadModel(source(server), { cacheDir, fetchImpl: loopbackFetch }), "OFFLINE");
  const partial = path.join(cacheDir, `${FILE}.partial`);
  assert.equal((await stat(partial)).size, cut);
  assert.equal(first.partialBytes, cut);
  assert.equal(findCachedModel(cacheDir, FILE), undefined);
  assert.match(describeDownloadFailure(first, source(server), cacheDir), /resumes/);

  const progress: DownloadProgress[] = [];
  const file = await downloadModel(source(server), { cacheDir, fetchImpl: loopbackFetch, onProgress: (p) => progress.push(p) });
  assert.equal(server.requests[1]?.range, `bytes=${cut}-`);
  assert.deepEqual(progress[0], { receivedBytes: cut, totalBytes: DATA.length });
  assert.equal(sha256(await readFile(file)), SHA);
  assert.equal((await readFile(`${file}.sha256`, "utf8")).slice(0, 64), SHA);
});

test("a catalog checksum mismatch throws CHECKSUM_MISMATCH and leaves no file behind", async (t) => {
  const server = await startServer(t, fileHandler());
  const cacheDir = await tempCacheDir(t);
  const wrong = "0".repeat(64);
  const err = await rejectsWith(downloadModel(source(server, { sha256: wrong }), { cacheDir, fetchImpl: loopbackFetch }), "CHECKSUM_MISMATCH");
  assert.equal(err.expectedSha256, wrong);
  assert.equal(err.actualSha256, SHA);
  for (const suffix of ["", ".partial", ".sha256"]) assert.equal(existsSync(path.join(cacheDir, FILE + suffix)), false, suffix);
  assert.equal(findCachedModel(cacheDir, FILE), undefined);
  assert.match(describeDownloadFailure(err, source(server), cacheDir), /did not match its expected SHA-256/);
});

test("without a catalog checksum the server's etag is verified", async (t) => {
  const server = await startServer(t, fileHandler({ etag: "f".repeat(64) }));
  const cacheDir = await tempCacheDir(t);
  const err = await rejectsWith(downloadModel(source(server), { cacheDir, fetchImpl: loopbackFetch }), "CHECKSUM_MISMATCH");
  assert.equal(err.expectedSha256, "f".repeat(64));
  assert.equal(existsSync(path.join(cacheDir, FILE)), false);
});

test("a server that ignores Range (200) restarts the file cleanly", async (t) => {
  const server = await startServer(t, fileHandler({ ignoreRange: true }));
  const cacheDir = await tempCacheDir(t);
  await mkdir(cacheDir, { recursive: true });
  await writeFile(path.join(cacheDir, `${FILE}.partial`), randomBytes(5000));
  const file = await downloadModel(source(server), { cacheDir, fetchImpl: loopbackFetch });
  assert.equal(server.requests.length, 1);
  assert.equal(server.requests[0]?.range, "bytes=5000-");
  assert.equal(sha256(await readFile(file)), SHA);
});

test("a partial that is already whole (416) is downloaded again", async (t) => {
  const server = await startServer(t, fileHandler());
  const cacheDir = await tempCacheDir(t);
  await mkdir(cacheDir, { recursive: true });
  await writeFile(path.join(cacheDir, `${FILE}.partial`), DATA);
  const file = await downloadModel(source(server), { cacheDir, fetchImpl: loopbackFetch });
  assert.deepEqual(server.requests.map((r) => r.range), [`bytes=${DATA.length}-`, undefined]);
  assert.equal(sha256(await readFile(file)), SHA);
});

test("an unreachable host is OFFLINE, and the explanation offers --model", async (t) => {
  const server = await startServer(t, fileHandler());
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const { port } = closed.address() as AddressInfo;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const cacheDir = await tempCacheDir(t);
  const src = { ...source(server), url: `http://127.0.0.1:${port}/microsoft/phi/resolve/main/${FILE}` };
  const err = await rejectsWith(downloadModel(src, { cacheDir, fetchImpl: loopbackFetch }), "OFFLINE");
  const text = describeDownloadFailure(err, src, cacheDir);
  assert.match(text, /--model/);
  assert.match(text, /offline/);
  assert.ok(text.includes(`127.0.0.1:${port}`), text);
  assert.ok(text.includes(path.join(cacheDir, FILE)), text);
  assert.match(text, /PHISERVE_MODEL_BASE_URL/);
  assert.doesNotMatch(text, /\n/);
});

test("a complete cached file is returned without any request", async (t) => {
  const server = await startServer(t, fileHandler());
  const cacheDir = await tempCacheDir(t);
  await downloadModel(source(server), { cacheDir, fetchImpl: loopbackFetch });
  const refusing: typeof fetch = () => Promise.reject(new Error("no request expected"));
  const again = await downloadModel(source(server, { sha256: SHA }), { cacheDir, fetchImpl: refusing });
  assert.equal(again, path.join(cacheDir, FILE));
  assert.equal(server.requests.length, 1);
});

test("a hand-copied file without sidecar is verified and adopted; a wrong one is replaced", async (t) => {
  const server = await startServer(t, fileHandler());
  const cacheDir = await tempCacheDir(t);
  await mkdir(cacheDir, { recursive: true });
  const target = path.join(cacheDir, FILE);
  await writeFile(target, DATA);
  assert.equal(await downloadModel(source(server, { sha256: SHA }), { cacheDir, fetchImpl: loopbackFetch }), target);
  assert.equal(server.requests.length, 0);
  assert.equal(findCachedModel(cacheDir, FILE), target);

  await rm(`${target}.sha256`);
  await writeFile(target, randomBytes(100));
  await downloadModel(source(server, { sha256: SHA }), { cacheDir, fetchImpl: loopbackFetch });
  assert.equal(server.requests.length, 1);
  assert.equal(sha256(await readFile(target)), SHA);
});

test("an abort signal stops the download as ABORTED and keeps the partial", async (t) => {
  const server = await startServer(t, fileHandler({ stall: { request: 1, bytes: 100_000 } }));
  const cacheDir = await tempCacheDir(t);
  const controller = new AbortController();
  const onProgress = (p: DownloadProgress): void => {
    if (p.receivedBytes > 0) controller.abort();
  };
  const err = await rejectsWith(
    downloadModel(source(server), { cacheDir, fetchImpl: loopbackFetch, signal: controller.signal, onProgress }),
    "ABORTED",
  );
  assert.ok(err.partialBytes > 0);
  assert.equal((await stat(path.join(cacheDir, `${FILE}.partial`))).size, err.partialBytes);
  assert.equal(existsSync(path.join(cacheDir, FILE)), false);
  await rejectsWith(downloadModel(source(server), { cacheDir, fetchImpl: loopbackFetch, signal: AbortSignal.abort() }), "ABORTED");
  assert.equal(server.requests.length, 1);
});

test("a stalled transfer gives up as OFFLINE and the next call resumes", async (t) => {
  const server = await startServer(t, fileHandler({ stall: { request: 1, bytes: 200_000 } }));
  const cacheDir = await tempCacheDir(t);
  const err = await rejectsWith(downloadModel(source(server), { cacheDir, fetchImpl: loopbackFetch, stallTimeoutMs: 300 }), "OFFLINE");
  assert.equal(err.partialBytes, 200_000);
  const file = await downloadModel(source(server), { cacheDir, fetchImpl: loopbackFetch, stallTimeoutMs: 300 });
  assert.equal(server.requests[1]?.range, "bytes=200000-");
  assert.equal(sha256(await readFile(file)), SHA);
});

test("Hugging Face style redirect: X-Linked-Etag verifies, credentials stay on the origin, baseUrl rewrites", async (t) => {
  const cdn = await startServer(t, fileHandler({ etag: "cdn-etag-1" }));
  const hub = await startServer(t, (req, res) => {
    res.writeHead(302, { location: `${cdn.origin}/blobs/${FILE}?sig=1`, "x-linked-etag": `"${SHA}"`, etag: '"weak"' }).end();
  });
  const cacheDir = await tempCacheDir(t);
  const src = { url: `https://huggingface.co/microsoft/phi/resolve/main/${FILE}`, fileName: FILE };
  const file = await downloadModel(src, { cacheDir, fetchImpl: loopbackFetch, baseUrl: hub.origin, headers: { Authorization: "Bearer secret" } });
  assert.equal(sha256(await readFile(file)), SHA);
  assert.deepEqual(hub.requests, [{ path: `/microsoft/phi/resolve/main/${FILE}`, range: undefined, authorization: "Bearer secret" }]);
  assert.deepEqual(cdn.requests, [{ path: `/blobs/${FILE}?sig=1`, range: undefined, authorization: undefined }]);
});

test("HTTP errors are HTTP_STATUS with a matching explanation", async (t) => {
  const server = await startServer(t, (_req, res, n) => res.writeHead(n === 1 ? 404 : 401).end("nope"));
  const cacheDir = await tempCacheDir(t);
  const notFound = await rejectsWith(downloadModel(source(server), { cacheDir, fetchImpl: loopbackFetch }), "HTTP_STATUS");
  assert.equal(notFound.status, 404);
  assert.match(describeDownloadFailure(notFound, source(server), cacheDir), /not found.*--model/);
  const denied = await rejectsWith(downloadModel(source(server), { cacheDir, fetchImpl: loopbackFetch }), "HTTP_STATUS");
  assert.equal(denied.status, 401);
  assert.match(describeDownloadFailure(denied, source(server), cacheDir), /access token/);
});

test("rewriteDownloadUrl swaps only the Hugging Face origin", () => {
  const hf = "https://huggingface.co/microsoft/Phi-4-mini-instruct-gguf/resolve/main/x.gguf?download=true";
  assert.equal(rewriteDownloadUrl(hf), hf);
  assert.equal(rewriteDownloadUrl(hf, ""), hf);
  assert.equal(rewriteDownloadUrl(hf, "http://127.0.0.1:8080"), "http://127.0.0.1:8080/microsoft/Phi-4-mini-instruct-gguf/resolve/main/x.gguf?download=true");
  assert.equal(rewriteDownloadUrl(hf, "https://mirror.example/hf/"), "https://mirror.example/hf/microsoft/Phi-4-mini-instruct-gguf/resolve/main/x.gguf?download=true");
  assert.equal(rewriteDownloadUrl("https://example.com/a.gguf", "http://127.0.0.1:1"), "https://example.com/a.gguf");
  assert.throws(() => rewriteDownloadUrl(hf, "ftp://mirror.example"), TypeError);
});

test("defaultCacheDir honours PHISERVE_CACHE_DIR, then XDG_CACHE_HOME, then ~/.cache", () => {
  assert.equal(defaultCacheDir({ PHISERVE_CACHE_DIR: "/data/models", XDG_CACHE_HOME: "/x" }, "/home/u"), "/data/models");
  assert.equal(defaultCacheDir({ XDG_CACHE_HOME: "/x" }, "/home/u"), path.join("/x", "phiserve", "models"));
  assert.equal(defaultCacheDir({ XDG_CACHE_HOME: "relative" }, "/home/u"), path.join("/home/u", ".cache", "phiserve", "models"));
  assert.equal(defaultCacheDir({ PHISERVE_CACHE_DIR: "" }, "/home/u"), path.join("/home/u", ".cache", "phiserve", "models"));
});

test("header parsing helpers", () => {
  assert.equal(sha256FromEtag(`"${SHA.toUpperCase()}"`), SHA);
  assert.equal(sha256FromEtag(`W/"${SHA}"`), SHA);
  assert.equal(sha256FromEtag('"abc-123"'), undefined);
  assert.equal(sha256FromEtag(null), undefined);
  assert.deepEqual(parseContentRange("bytes 10-99/100"), { start: 10, end: 99, total: 100 });
  assert.deepEqual(parseContentRange("bytes 10-99/*"), { start: 10, end: 99, total: undefined });
  assert.equal(parseContentRange("items 1-2/3"), undefined);
});

test("invalid file names and checksums are rejected before any request", async (t) => {
  const cacheDir = await tempCacheDir(t);
  const refusing: typeof fetch = () => Promise.reject(new Error("no request expected"));
  const base = { url: "http://127.0.0.1:1/x.gguf" };
  await assert.rejects(downloadModel({ ...base, fileName: "../escape.gguf" }, { cacheDir, fetchImpl: refusing }), TypeError);
  await assert.rejects(downloadModel({ ...base, fileName: "x.gguf", sha256: "abc" }, { cacheDir, fetchImpl: refusing }), TypeError);
  assert.equal(findCachedModel(cacheDir, "../escape.gguf"), undefined);
});

function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  const pass = new PassThrough();
  let out = "";
  pass.on("data", (chunk: Buffer) => (out += chunk.toString("utf8")));
  Object.assign(pass, { isTTY, columns: 120, rows: 40 });
  return { stream: pass as unknown as NodeJS.WriteStream, text: () => out };
}

test("progress bar prints only a start and an end line when not a TTY", async () => {
  const { stream, text } = fakeStream(false);
  const bar = createDownloadProgressBar(stream, FILE);
  for (let i = 0; i <= 10; i += 1) bar.update({ receivedBytes: i * 100_000, totalBytes: 1_000_000 });
  bar.stop();
  bar.stop();
  await new Promise((resolve) => setImmediate(resolve));
  const lines = text().trimEnd().split("\n");
  assert.equal(lines.length, 2, text());
  assert.match(lines[0] ?? "", /phi-test\.gguf: downloading/);
  assert.match(lines[1] ?? "", /downloaded 977 KiB of 977 KiB/);
});

test("progress bar draws bytes, speed and ETA on a TTY", async () => {
  const { stream, text } = fakeStream(true);
  const bar = createDownloadProgressBar(stream, FILE);
  bar.update({ receivedBytes: 0, totalBytes: 4 << 20 });
  await new Promise((resolve) => setTimeout(resolve, 300));
  bar.update({ receivedBytes: 2 << 20, totalBytes: 4 << 20 });
  bar.stop();
  await new Promise((resolve) => setImmediate(resolve));
  assert.match(text(), /phi-test\.gguf .*50\.0% \| 2\.00 MiB\/4\.00 MiB \| .*\/s \| ETA \d/);
});

test("DNS failures from fetch map to OFFLINE; redirects to non-http URLs are refused", async (t) => {
  const cacheDir = await tempCacheDir(t);
  const dns = Object.assign(new Error("getaddrinfo ENOTFOUND huggingface.co"), { code: "ENOTFOUND" });
  const noDns: typeof fetch = () => Promise.reject(new TypeError("fetch failed", { cause: dns }));
  const src = { url: `https://huggingface.co/microsoft/phi/resolve/main/${FILE}`, fileName: FILE };
  const err = await rejectsWith(downloadModel(src, { cacheDir, fetchImpl: noDns }), "OFFLINE");
  assert.match(describeDownloadFailure(err, src, cacheDir), /huggingface\.co \(getaddrinfo ENOTFOUND huggingface\.co\): this machine looks offline/);

  const server = await startServer(t, (_req, res) => res.writeHead(302, { location: "data:text/plain,hello" }).end());
  const refused = await rejectsWith(downloadModel(source(server), { cacheDir, fetchImpl: loopbackFetch }), "HTTP_STATUS");
  assert.equal(refused.status, 302);
});
