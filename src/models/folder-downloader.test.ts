import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import {
  describeFolderDownloadFailure,
  downloadFolder,
  FolderDownloadError,
  gitBlobOid,
  hubResolveUrl,
  hubTreeUrl,
  listFolderFiles,
  type FolderDownloadProgress,
  type FolderIdentity,
} from "./folder-downloader.ts";
import { findCachedFolder, folderCachePaths } from "./model-cache.ts";

const REPO = "microsoft/Phi-test-vision-onnx";
const REVISION = "0123456789abcdef0123456789abcdef01234567";
const FOLDER_PATH = "cpu_and_mobile/cpu-int4";
const FOLDER: FolderIdentity = { repo: REPO, revision: REVISION, path: FOLDER_PATH };

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A file the fake Hub serves: its content, whether it is in Git LFS, and what the listing claims. */
interface HubFile {
  rel: string;
  data: Buffer;
  lfs: boolean;
  /** Listing overrides (to simulate a wrong digest). */
  listedSha256?: string;
  listedOid?: string;
  /** Served instead of `data` (same length), to simulate a corrupted transfer. */
  served?: Buffer;
}

function makeFiles(): HubFile[] {
  return [
    { rel: "genai_config.json", data: Buffer.from(JSON.stringify({ model: { type: "phi3v" } }, null, 2)), lfs: false },
    { rel: "model.onnx", data: randomBytes(50_000), lfs: true },
    { rel: "model.onnx.data", data: randomBytes(600_000 + 123), lfs: true },
    { rel: "tok/tokenizer.json", data: Buffer.from('{"version":"1.0"}'), lfs: false },
  ];
}

interface Recorded {
  path: string;
  range: string | undefined;
  authorization: string | undefined;
}

interface FakeHub {
  origin: string;
  requests: Recorded[];
  files: HubFile[];
  /** Cut the transfer of this file after `bytes` bytes, on its first request only. */
  cut?: { rel: string; bytes: number } | undefined;
  /** Entries per listing page (pagination through `Link`); all in one page when undefined. */
  pageSize?: number | undefined;
  /** Replaces the listing answer. */
  listing?: ((res: ServerResponse) => void) | undefined;
  /** Extra raw entries appended to the listing. */
  extraEntries?: unknown[];
}

function listingEntries(hub: FakeHub): unknown[] {
  const entries: unknown[] = [{ type: "directory", oid: "f".repeat(40), size: 0, path: `${FOLDER_PATH}/tok` }];
  for (const f of hub.files) {
    const entry: Record<string, unknown> = { type: "file", oid: f.listedOid ?? gitBlobOid(f.data), size: f.data.length, path: `${FOLDER_PATH}/${f.rel}` };
    if (f.lfs) entry.lfs = { oid: f.listedSha256 ?? sha256(f.data), size: f.data.length, pointerSize: 134 };
    entries.push(entry);
  }
  return [...entries, ...(hub.extraEntries ?? [])];
}

function serveListing(hub: FakeHub, url: URL, res: ServerResponse): void {
  if (hub.listing !== undefined) return hub.listing(res);
  assert.equal(url.searchParams.get("recursive"), "true");
  const all = listingEntries(hub);
  const size = hub.pageSize ?? all.length;
  const start = Number(url.searchParams.get("cursor") ?? "0");
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (start + size < all.length) {
    // The Hub answers with an absolute huggingface.co link; the downloader must rewrite it to the mirror.
    const next = `https://huggingface.co${url.pathname}?recursive=true&cursor=${start + size}`;
    headers.link = `<${next}>; rel="next"`;
  }
  res.writeHead(200, headers).end(JSON.stringify(all.slice(start, start + size)));
}

function serveFile(hub: FakeHub, rel: string, req: IncomingMessage, res: ServerResponse): void {
  const file = hub.files.find((f) => f.rel === rel);
  if (file === undefined) return void res.writeHead(404).end("Entry not found");
  const data = file.served ?? file.data;
  const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  const start = match === null ? 0 : Number(match[1]);
  const etag = `"${file.lfs ? sha256(file.data) : gitBlobOid(file.data)}"`;
  const headers: Record<string, string> = { "content-length": String(data.length - start), etag, "accept-ranges": "bytes" };
  if (file.lfs) headers["x-linked-etag"] = etag;
  if (start > 0) res.writeHead(206, { ...headers, "content-range": `bytes ${start}-${data.length - 1}/${data.length}` });
  else res.writeHead(200, headers);
  const body = data.subarray(start);
  if (hub.cut?.rel === rel) {
    const bytes = hub.cut.bytes;
    hub.cut = undefined;
    res.write(body.subarray(0, bytes), () => setTimeout(() => res.socket?.destroy(), 100));
  } else {
    res.end(body);
  }
}

/** A loopback server speaking the Hub's tree API and `resolve` URLs; closed after the test. */
async function startHub(t: TestContext, files: HubFile[] = makeFiles()): Promise<FakeHub> {
  const hub: FakeHub = { origin: "", requests: [], files };
  const treePrefix = `/api/models/${REPO}/tree/${REVISION}/${FOLDER_PATH}`;
  const resolvePrefix = `/${REPO}/resolve/${REVISION}/${FOLDER_PATH}/`;
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    hub.requests.push({ path: url.pathname, range: req.headers.range, authorization: req.headers.authorization });
    if (url.pathname === treePrefix) return serveListing(hub, url, res);
    if (url.pathname.startsWith(resolvePrefix)) return serveFile(hub, decodeURIComponent(url.pathname.slice(resolvePrefix.length)), req, res);
    res.writeHead(404).end("not found");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  hub.origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return hub;
}

/** `fetch` that refuses anything but loopback, so no test can reach the internet. */
const loopbackFetch: typeof fetch = (input, init) => {
  const url = input instanceof Request ? input.url : String(input);
  if (!url.startsWith("http://127.0.0.1:")) throw new Error(`test tried to reach ${url}`);
  return fetch(input, init);
};

const refusingFetch: typeof fetch = () => Promise.reject(new Error("no request expected"));

async function tempCacheDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "phiserve-folder-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return path.join(dir, "cache");
}

function fileRequests(hub: FakeHub): string[] {
  return hub.requests.filter((r) => r.path.includes("/resolve/")).map((r) => r.path.split(`${FOLDER_PATH}/`)[1] ?? r.path);
}

function listingRequests(hub: FakeHub): number {
  return hub.requests.filter((r) => r.path.startsWith("/api/")).length;
}

async function rejectsWithFolderError(promise: Promise<unknown>): Promise<FolderDownloadError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof FolderDownloadError, `expected FolderDownloadError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected the folder download to fail");
}

async function assertFolderMatches(dir: string, files: HubFile[]): Promise<void> {
  for (const f of files) assert.equal(sha256(await readFile(path.join(dir, ...f.rel.split("/")))), sha256(f.data), f.rel);
}

test("downloads every file of the folder (nested ones too), writes the manifest last, and reports folder-wide progress", async (t) => {
  const hub = await startHub(t);
  const cacheDir = await tempCacheDir(t);
  assert.equal(findCachedFolder(cacheDir, FOLDER), undefined);
  const progress: FolderDownloadProgress[] = [];
  const dir = await downloadFolder(FOLDER, { cacheDir, baseUrl: hub.origin, fetchImpl: loopbackFetch, onProgress: (p) => progress.push(p) });

  assert.equal(dir, path.join(cacheDir, "microsoft--Phi-test-vision-onnx--cpu_and_mobile--cpu-int4"));
  await assertFolderMatches(dir, hub.files);
  assert.equal(findCachedFolder(cacheDir, FOLDER), dir);
  const manifest = JSON.parse(await readFile(`${dir}.manifest.json`, "utf8")) as { files: { path: string; sha256?: string }[] };
  assert.deepEqual(manifest.files.map((f) => f.path), ["genai_config.json", "model.onnx", "model.onnx.data", "tok/tokenizer.json"]);
  assert.equal(manifest.files[1]?.sha256, sha256(hub.files[1]?.data ?? Buffer.alloc(0)));
  assert.equal(manifest.files[0]?.sha256, undefined);

  const total = hub.files.reduce((s, f) => s + f.data.length, 0);
  assert.deepEqual(progress[0], { receivedBytes: 0, totalBytes: total, filesDone: 0, filesTotal: 4 });
  assert.deepEqual(progress.at(-1), { receivedBytes: total, totalBytes: total, filesDone: 4, filesTotal: 4 });
  for (let i = 1; i < progress.length; i += 1) {
    assert.ok((progress[i]?.receivedBytes ?? 0) >= (progress[i - 1]?.receivedBytes ?? 0), "progress never goes back");
    assert.ok((progress[i]?.filesDone ?? 0) >= (progress[i - 1]?.filesDone ?? 0));
  }
  assert.ok(progress.some((p) => p.currentFile === "model.onnx.data" && p.receivedBytes > 0 && p.receivedBytes < total));
  assert.equal(listingRequests(hub), 1);
  assert.deepEqual(fileRequests(hub), ["genai_config.json", "model.onnx", "model.onnx.data", "tok/tokenizer.json"]);
});

test("a complete folder is returned without any request; another revision is not taken for it", async (t) => {
  const hub = await startHub(t);
  const cacheDir = await tempCacheDir(t);
  const dir = await downloadFolder(FOLDER, { cacheDir, baseUrl: hub.origin, fetchImpl: loopbackFetch });
  const again = await downloadFolder(FOLDER, { cacheDir, baseUrl: hub.origin, fetchImpl: refusingFetch });
  assert.equal(again, dir);

  assert.equal(findCachedFolder(cacheDir, { ...FOLDER, path: `/${FOLDER_PATH}/` }), dir, "slashes around the folder path do not matter");
  const other = { ...FOLDER, revision: "main" };
  assert.equal(findCachedFolder(cacheDir, other), undefined);
  await assert.rejects(downloadFolder(other, { cacheDir, baseUrl: hub.origin, fetchImpl: refusingFetch }), FolderDownloadError);

  // A file that went missing makes the folder incomplete again.
  await rm(path.join(dir, "model.onnx"));
  assert.equal(findCachedFolder(cacheDir, FOLDER), undefined);
});

test("a cut transfer keeps finished files and the partial; the next run skips the former and resumes the latter", async (t) => {
  const hub = await startHub(t);
  const cut = 250_000;
  hub.cut = { rel: "model.onnx.data", bytes: cut };
  const cacheDir = await tempCacheDir(t);
  const err = await rejectsWithFolderError(downloadFolder(FOLDER, { cacheDir, baseUrl: hub.origin, fetchImpl: loopbackFetch }));
  assert.equal(err.code, "OFFLINE");
  assert.equal(err.file?.path, "model.onnx.data");
  const { dir, manifest } = folderCachePaths(cacheDir, FOLDER);
  assert.equal(existsSync(manifest), false);
  assert.equal(findCachedFolder(cacheDir, FOLDER), undefined);
  assert.equal((await stat(path.join(dir, "model.onnx.data.partial"))).size, cut);
  const text = describeFolderDownloadFailure(err, FOLDER, cacheDir);
  assert.match(text, /model\.onnx\.data/);
  assert.match(text, /running the same command again resumes/);
  assert.match(text, /Files finished earlier are kept/);
  assert.ok(text.includes(dir), text);
  assert.doesNotMatch(text, /\n/);

  hub.requests.length = 0;
  const progress: FolderDownloadProgress[] = [];
  await downloadFolder(FOLDER, { cacheDir, baseUrl: hub.origin, fetchImpl: loopbackFetch, onProgress: (p) => progress.push(p) });
  assert.deepEqual(fileRequests(hub), ["model.onnx.data", "tok/tokenizer.json"]);
  assert.equal(hub.requests.find((r) => r.path.endsWith("model.onnx.data"))?.range, `bytes=${cut}-`);
  await assertFolderMatches(dir, hub.files);
  assert.equal(findCachedFolder(cacheDir, FOLDER), dir);
  // Finished files count from the start of the resumed run.
  const before = (hub.files[0]?.data.length ?? 0) + (hub.files[1]?.data.length ?? 0);
  assert.ok(progress.some((p) => p.filesDone === 2 && p.receivedBytes === before), JSON.stringify(progress.slice(0, 4)));
});

test("an LFS file whose SHA-256 differs from the listing fails as CHECKSUM_MISMATCH and is not kept", async (t) => {
  const files = makeFiles();
  const wrong = "0".repeat(64);
  (files[1] as HubFile).listedSha256 = wrong;
  const hub = await startHub(t, files);
  const cacheDir = await tempCacheDir(t);
  const err = await rejectsWithFolderError(downloadFolder(FOLDER, { cacheDir, baseUrl: hub.origin, fetchImpl: loopbackFetch }));
  assert.equal(err.code, "CHECKSUM_MISMATCH");
  assert.equal(err.file?.path, "model.onnx");
  const { dir, manifest } = folderCachePaths(cacheDir, FOLDER);
  for (const suffix of ["", ".partial", ".sha256"]) assert.equal(existsSync(path.join(dir, `model.onnx${suffix}`)), false, suffix);
  assert.equal(existsSync(manifest), false);
  assert.match(describeFolderDownloadFailure(err, FOLDER, cacheDir), new RegExp(`expected ${wrong}`));
});

test("a small (non-LFS) file is checked against its Git blob id; a stale cached copy is replaced", async (t) => {
  const files = makeFiles();
  const config = files[0] as HubFile;
  config.served = Buffer.from(config.data.toString("utf8").replace("phi3v", "xxxxx"));
  const hub = await startHub(t, files);
  const cacheDir = await tempCacheDir(t);
  const err = await rejectsWithFolderError(downloadFolder(FOLDER, { cacheDir, baseUrl: hub.origin, fetchImpl: loopbackFetch }));
  assert.equal(err.code, "CHECKSUM_MISMATCH");
  assert.equal(err.file?.path, "genai_config.json");
  const { dir } = folderCachePaths(cacheDir, FOLDER);
  assert.equal(existsSync(path.join(dir, "genai_config.json")), false);
  assert.match(describeFolderDownloadFailure(err, FOLDER, cacheDir), /Git blob id/);

  // A copy left by another revision (with its sidecar) is not trusted: it is replaced by the listed content.
  delete config.served;
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "genai_config.json"), "{}");
  await writeFile(path.join(dir, "genai_config.json.sha256"), `${sha256(Buffer.from("{}"))}  genai_config.json\n`);
  await downloadFolder(FOLDER, { cacheDir, baseUrl: hub.origin, fetchImpl: loopbackFetch });
  await assertFolderMatches(dir, hub.files);
});

test("listing pages are followed through Link headers, rewritten to the mirror, with the token sent", async (t) => {
  const hub = await startHub(t);
  hub.pageSize = 2;
  const cacheDir = await tempCacheDir(t);
  const headers = { authorization: "Bearer hf_test" };
  const files = await listFolderFiles(FOLDER, { baseUrl: hub.origin, fetchImpl: loopbackFetch, headers });
  assert.deepEqual(files.map((f) => f.path), ["genai_config.json", "model.onnx", "model.onnx.data", "tok/tokenizer.json"]);
  assert.equal(listingRequests(hub), 3);
  assert.ok(hub.requests.every((r) => r.authorization === "Bearer hf_test"));
  assert.equal(files[0]?.url, `https://huggingface.co/${REPO}/resolve/${REVISION}/${FOLDER_PATH}/genai_config.json`);
  assert.equal(files[0]?.sha256, undefined);
  assert.equal(files[2]?.sha256, sha256(hub.files[2]?.data ?? Buffer.alloc(0)));
  const dir = await downloadFolder(FOLDER, { cacheDir, baseUrl: hub.origin, fetchImpl: loopbackFetch, headers });
  await assertFolderMatches(dir, hub.files);
});

test("listing failures are explained: 404, 401, offline, malformed and unsafe listings", async (t) => {
  const hub = await startHub(t);
  const cacheDir = await tempCacheDir(t);
  const run = () => downloadFolder(FOLDER, { cacheDir, baseUrl: hub.origin, fetchImpl: loopbackFetch });

  hub.listing = (res) => res.writeHead(404, { "x-error-code": "EntryNotFound" }).end("{}");
  let err = await rejectsWithFolderError(run());
  assert.equal(err.code, "HTTP_STATUS");
  assert.equal(err.file, undefined);
  let text = describeFolderDownloadFailure(err, FOLDER, cacheDir);
  assert.match(text, /^The file list of microsoft\/Phi-test-vision-onnx\/cpu_and_mobile\/cpu-int4@0123456 ?.*was not found/);
  assert.match(text, /PHISERVE_MODEL_BASE_URL/);

  hub.listing = (res) => res.writeHead(401).end();
  err = await rejectsWithFolderError(run());
  assert.match(describeFolderDownloadFailure(err, FOLDER, cacheDir), /access token/);

  hub.listing = (res) => res.writeHead(200, { "content-type": "application/json" }).end("[]");
  err = await rejectsWithFolderError(run());
  assert.match(describeFolderDownloadFailure(err, FOLDER, cacheDir), /lists no files/);

  hub.listing = (res) => res.writeHead(200).end("<html>");
  err = await rejectsWithFolderError(run());
  assert.match(err.message, /not JSON/);

  hub.listing = undefined;
  hub.extraEntries = [{ type: "file", oid: "a".repeat(40), size: 1, path: `${FOLDER_PATH}/../../escape.txt` }];
  err = await rejectsWithFolderError(run());
  assert.match(err.message, /unsafe path/);
  hub.extraEntries = [{ type: "file", oid: "a".repeat(40), size: 1, path: "elsewhere/x.txt" }];
  err = await rejectsWithFolderError(run());
  assert.match(err.message, /outside the folder/);
  hub.extraEntries = [{ type: "file", oid: "a".repeat(40), size: 1, path: `${FOLDER_PATH}/x.bin`, lfs: { oid: "nope", size: 1 } }];
  err = await rejectsWithFolderError(run());
  assert.match(err.message, /does not understand/);
  assert.equal(fileRequests(hub).length, 0, "nothing is downloaded from a listing that is refused");
  assert.equal(existsSync(path.join(cacheDir, "..", "escape.txt")), false);

  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const { port } = closed.address() as AddressInfo;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  err = await rejectsWithFolderError(downloadFolder(FOLDER, { cacheDir, baseUrl: `http://127.0.0.1:${port}`, fetchImpl: loopbackFetch }));
  assert.equal(err.code, "OFFLINE");
  assert.match(describeFolderDownloadFailure(err, FOLDER, cacheDir), /offline/);
});

test("an abort stops the folder download as ABORTED and keeps what was received", async (t) => {
  const hub = await startHub(t);
  const cacheDir = await tempCacheDir(t);
  const controller = new AbortController();
  const onProgress = (p: FolderDownloadProgress): void => {
    if (p.currentFile === "model.onnx.data" && p.receivedBytes > 60_000) controller.abort();
  };
  const err = await rejectsWithFolderError(
    downloadFolder(FOLDER, { cacheDir, baseUrl: hub.origin, fetchImpl: loopbackFetch, signal: controller.signal, onProgress }),
  );
  assert.equal(err.code, "ABORTED");
  const { dir } = folderCachePaths(cacheDir, FOLDER);
  assert.ok(existsSync(path.join(dir, "model.onnx")));
  assert.equal(findCachedFolder(cacheDir, FOLDER), undefined);
  assert.match(describeFolderDownloadFailure(err, FOLDER, cacheDir), /cancelled/);
});

test("Hub URLs encode each path segment and keep the folder's slashes", () => {
  const folder = { repo: "microsoft/Phi-3.5-vision-instruct-onnx", revision: "main", path: "cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4" };
  assert.equal(
    hubTreeUrl(folder),
    "https://huggingface.co/api/models/microsoft/Phi-3.5-vision-instruct-onnx/tree/main/cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4?recursive=true",
  );
  assert.equal(
    hubResolveUrl(folder, "a b/c#d.json"),
    "https://huggingface.co/microsoft/Phi-3.5-vision-instruct-onnx/resolve/main/cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4/a%20b/c%23d.json",
  );
  assert.equal(hubTreeUrl({ ...folder, revision: "refs/pr/1" }).includes("/tree/refs%2Fpr%2F1/"), true);
  // Git's blob id of "hello\n" (as `git hash-object` prints it).
  assert.equal(gitBlobOid(Buffer.from("hello\n")), "ce013625030ba8dba906f756967f9e9ca394464a");
});
