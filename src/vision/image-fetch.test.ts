import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { ImageError, type ImageErrorReason } from "./image-error.ts";
import { fetchImage, fetchImageWith, forbiddenAddressReason, MAX_REDIRECTS, type ImageFetchDeps, type ImageFetchOptions } from "./image-fetch.ts";

/** The smallest valid PNG signature plus some bytes: fetchImage checks types, not pixels. */
const PNG = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(2000, 7)]);

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface TestServer {
  port: number;
  origin: string;
  paths: string[];
}

/** A loopback server; closed (connections included) after the test. */
async function startServer(t: TestContext, handler: Handler): Promise<TestServer> {
  const paths: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    paths.push(req.url ?? "");
    handler(req, res);
  });
  server.on("connection", (socket) => sockets.add(socket));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { port, origin: `http://127.0.0.1:${port}`, paths };
}

const image: Handler = (_req, res) => res.writeHead(200, { "content-type": "image/png", "content-length": String(PNG.length) }).end(PNG);

const OPEN: ImageFetchOptions = { maxBytes: 1 << 20, timeoutMs: 5000, allowPrivateAddresses: true };
const GUARDED: ImageFetchOptions = { ...OPEN, allowPrivateAddresses: false };

/**
 * Test resolver: names under `.test` map to fixed addresses (no real DNS), and loopback counts as public so a
 * local server can stand in for a public one while every other range keeps the real policy.
 */
function testDeps(names: Record<string, string[]>, calls: string[] = []): ImageFetchDeps {
  return {
    async resolve(hostname) {
      calls.push(hostname);
      const found = names[hostname];
      if (found === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
      return found.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
    },
    forbiddenReason: (address) => (address === "127.0.0.1" ? undefined : forbiddenAddressReason(address)),
  };
}

async function rejectsWith(promise: Promise<unknown>, reason: ImageErrorReason): Promise<ImageError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ImageError, `expected ImageError, got ${String(err)}`);
    assert.equal(err.reason, reason, err.message);
    return err;
  }
  assert.fail(`expected ${reason}, but the fetch succeeded`);
}

test("fetches an image from an allowed address, with its content type", async (t) => {
  const server = await startServer(t, image);
  const fetched = await fetchImage(`${server.origin}/cat.png?size=1`, OPEN);
  assert.deepEqual(fetched.bytes, PNG);
  assert.equal(fetched.declaredMime, "image/png");
  assert.deepEqual(server.paths, ["/cat.png?size=1"]);
});

test("loopback, private and metadata addresses are refused unless allowed, before any connection", async (t) => {
  const server = await startServer(t, image);
  const err = await rejectsWith(fetchImage(`${server.origin}/cat.png`, GUARDED), "forbidden_address");
  assert.match(err.message, /loopback/);
  await rejectsWith(fetchImage(`http://localhost:${server.port}/cat.png`, GUARDED), "forbidden_address");
  await rejectsWith(fetchImage(`http://[::1]:${server.port}/cat.png`, GUARDED), "forbidden_address");
  // The URL parser's other spellings of 127.0.0.1 are refused too.
  await rejectsWith(fetchImage(`http://2130706433:${server.port}/`, GUARDED), "forbidden_address");
  await rejectsWith(fetchImage(`http://0x7f.1:${server.port}/`, GUARDED), "forbidden_address");
  const metadata = await rejectsWith(fetchImage("http://169.254.169.254/latest/meta-data/", GUARDED), "forbidden_address");
  assert.match(metadata.message, /link-local/);
  await rejectsWith(fetchImage("http://[::ffff:169.254.169.254]/", GUARDED), "forbidden_address");
  await rejectsWith(fetchImage("http://[fd00:ec2::254]/", GUARDED), "forbidden_address");
  assert.equal(server.paths.length, 0);
});

test("every address of a host is checked, and the connection goes to the address that was checked", async (t) => {
  const server = await startServer(t, image);
  // One public and one private address: refused, whichever comes first.
  const mixed = testDeps({ "mixed.test": ["127.0.0.1", "10.1.2.3"] });
  await rejectsWith(fetchImageWith(mixed, `http://mixed.test:${server.port}/`, GUARDED), "forbidden_address");

  // DNS rebinding: the name resolves once; the second answer (a private address) is never asked for or used.
  const calls: string[] = [];
  let answers = 0;
  const rebinding: ImageFetchDeps = {
    ...testDeps({}, calls),
    async resolve(hostname) {
      calls.push(hostname);
      answers += 1;
      return [{ address: answers === 1 ? "127.0.0.1" : "10.0.0.1", family: 4 }];
    },
  };
  const fetched = await fetchImageWith(rebinding, `http://rebind.test:${server.port}/pinned.png`, GUARDED);
  assert.deepEqual(fetched.bytes, PNG);
  assert.deepEqual(calls, ["rebind.test"]);
  assert.deepEqual(server.paths, ["/pinned.png"]);

  const missing = await rejectsWith(fetchImageWith(testDeps({}), "http://nowhere.test/x.png", GUARDED), "fetch_failed");
  assert.match(missing.message, /could not be resolved/);
});

test("redirects are followed (at most 3), and each target is checked: a redirect to a private address is refused", async (t) => {
  const target = await startServer(t, image);
  const hops = await startServer(t, (req, res) => {
    const n = Number(/^\/hop(\d+)$/.exec(req.url ?? "")?.[1] ?? "0");
    res.writeHead(302, { location: n > 0 ? `/hop${n - 1}` : `http://public.test:${target.port}/final.png` }).end();
  });
  const deps = testDeps({ "public.test": ["127.0.0.1"], "metadata.test": ["169.254.169.254"] });
  const fetched = await fetchImageWith(deps, `${hops.origin}/hop${MAX_REDIRECTS - 1}`, GUARDED);
  assert.deepEqual(fetched.bytes, PNG);
  assert.deepEqual(target.paths, ["/final.png"]);

  const tooMany = await rejectsWith(fetchImageWith(deps, `${hops.origin}/hop${MAX_REDIRECTS}`, GUARDED), "fetch_failed");
  assert.match(tooMany.message, /redirected more than 3 times/);

  for (const location of ["http://10.0.0.7/x.png", "http://metadata.test/latest/", "http://[fe80::1]/"]) {
    const redirecting = await startServer(t, (_req, res) => res.writeHead(307, { location }).end());
    await rejectsWith(fetchImageWith(deps, `${redirecting.origin}/start`, GUARDED), "forbidden_address");
  }
  const toFile = await startServer(t, (_req, res) => res.writeHead(302, { location: "file:///etc/passwd" }).end());
  await rejectsWith(fetchImageWith(deps, `${toFile.origin}/`, GUARDED), "fetch_failed");
});

test("size is capped: a Content-Length over the limit is refused unread, a longer body is cut", async (t) => {
  const big = Buffer.concat([PNG, Buffer.alloc(100_000)]);
  let declaredSent = 0;
  const declared = await startServer(t, (_req, res) => {
    res.writeHead(200, { "content-type": "image/png", "content-length": String(big.length) });
    res.write(big.subarray(0, 1000), () => (declaredSent = 1000));
    // The rest never comes: the fetch must not wait for it.
  });
  const err = await rejectsWith(fetchImage(`${declared.origin}/big.png`, { ...OPEN, maxBytes: 50_000 }), "too_large");
  assert.match(err.message, /102,008 bytes.*the limit is 50,000 bytes/);
  assert.ok(declaredSent <= 1000);

  const chunked = await startServer(t, (_req, res) => {
    res.writeHead(200, { "content-type": "image/png" });
    const timer = setInterval(() => res.write(Buffer.alloc(16_384)), 1);
    res.on("close", () => clearInterval(timer));
  });
  const cut = await rejectsWith(fetchImage(`${chunked.origin}/endless.png`, { ...OPEN, maxBytes: 50_000 }), "too_large");
  assert.match(cut.message, /larger than the limit of 50,000 bytes/);
});

test("a slow server runs into the deadline", async (t) => {
  const silent = await startServer(t, () => undefined);
  const err = await rejectsWith(fetchImage(`${silent.origin}/slow.png`, { ...OPEN, timeoutMs: 300 }), "fetch_failed");
  assert.match(err.message, /within 0\.3 s/);

  const trickle = await startServer(t, (_req, res) => {
    res.writeHead(200, { "content-type": "image/png", "content-length": String(PNG.length) });
    res.write(PNG.subarray(0, 10));
  });
  await rejectsWith(fetchImage(`${trickle.origin}/trickle.png`, { ...OPEN, timeoutMs: 300 }), "fetch_failed");
});

test("responses that are not images, errors and cut bodies are refused", async (t) => {
  const html = await startServer(t, (_req, res) => res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end("<html>"));
  const err = await rejectsWith(fetchImage(html.origin, OPEN), "unsupported_format");
  assert.match(err.message, /text\/html/);
  const untyped = await startServer(t, (_req, res) => res.writeHead(200).end(PNG));
  await rejectsWith(fetchImage(untyped.origin, OPEN), "unsupported_format");

  const missing = await startServer(t, (_req, res) => res.writeHead(404).end("nope"));
  assert.match((await rejectsWith(fetchImage(missing.origin, OPEN), "fetch_failed")).message, /HTTP 404/);

  const gzip = await startServer(t, (_req, res) => res.writeHead(200, { "content-type": "image/png", "content-encoding": "gzip" }).end(PNG));
  await rejectsWith(fetchImage(gzip.origin, OPEN), "fetch_failed");

  const cutShort = await startServer(t, (_req, res) => {
    res.writeHead(200, { "content-type": "image/png", "content-length": String(PNG.length) });
    res.write(PNG.subarray(0, 100), () => setTimeout(() => res.socket?.destroy(), 20));
  });
  await rejectsWith(fetchImage(cutShort.origin, OPEN), "fetch_failed");

  const typed = await startServer(t, (_req, res) => res.writeHead(200, { "content-type": "Image/JPEG; q=1" }).end(PNG));
  assert.equal((await fetchImage(typed.origin, OPEN)).declaredMime, "image/jpeg");

  await rejectsWith(fetchImage("ftp://127.0.0.1/x.png", OPEN), "fetch_failed");
  await rejectsWith(fetchImage("not a url", OPEN), "fetch_failed");
});

test("the caller's abort rejects with its reason, not an ImageError", async (t) => {
  const silent = await startServer(t, () => undefined);
  const controller = new AbortController();
  const reason = new Error("client went away");
  setTimeout(() => controller.abort(reason), 50);
  await assert.rejects(fetchImage(`${silent.origin}/x.png`, OPEN, controller.signal), (err) => err === reason);
});

test("address policy: public addresses pass; every non-public range is named, IPv6 forms of IPv4 included", () => {
  for (const address of ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"]) {
    assert.equal(forbiddenAddressReason(address), undefined, address);
  }
  const cases: [string, RegExp][] = [
    ["0.1.2.3", /this network/],
    ["10.20.30.40", /private/],
    ["100.64.0.1", /carrier-grade NAT/],
    ["100.127.255.255", /carrier-grade NAT/],
    ["127.0.0.1", /loopback/],
    ["127.255.0.9", /loopback/],
    ["169.254.169.254", /link-local/],
    ["172.16.0.1", /private/],
    ["172.31.255.255", /private/],
    ["192.168.1.1", /private/],
    ["224.0.0.251", /multicast/],
    ["255.255.255.255", /reserved/],
    ["::", /unspecified/],
    ["::1", /loopback/],
    ["fc00::1", /unique-local/],
    ["fd12:3456::1", /unique-local/],
    ["fe80::1%eth0", /link-local/],
    ["febf::1", /link-local/],
    ["ff02::1", /multicast/],
    ["::ffff:127.0.0.1", /loopback/],
    ["::ffff:7f00:1", /loopback/],
    ["::ffff:10.0.0.1", /private/],
    ["::ffff:169.254.169.254", /link-local/],
    ["64:ff9b::a9fe:a9fe", /link-local/],
    ["2002:c0a8:101::1", /private/],
    ["::10.0.0.1", /private/],
    ["not-an-ip", /unrecognised/],
  ];
  for (const [address, category] of cases) assert.match(forbiddenAddressReason(address) ?? "public", category, address);
});
