/**
 * Transport limits on the real CLI over bare sockets (issue 10): requests whose body never
 * finishes are answered 408 and closed at `--body-timeout`; one address cannot hold more than
 * `--max-connections-per-client` connections; a client uploading more than `--body-limit` can
 * send it all and read the 413 (no reset while it is still sending).
 */
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { ensureTestModel } from "../../src/model-factory/test-models.ts";
import { startServer, type RunningServer } from "../helpers/start-server.ts";
import { chunk, postHead, RawConnection } from "../helpers/raw-http.ts";

let model: string;
const BASE = ["--model-name", "phi-3.5-mini-instruct"];
const MiB = 2 ** 20;

before(async () => {
  model = await ensureTestModel();
});

async function withServer(args: string[], run: (server: RunningServer) => Promise<void>): Promise<void> {
  const server = await startServer(["--model", model, ...BASE, ...args]);
  try {
    await run(server);
  } finally {
    await server.close();
  }
}

/** Asserts the connection got a 408 in the Azure error shape and was closed. */
async function assertTimedOut(connection: RawConnection, what: string): Promise<void> {
  const response = await connection.readResponse();
  assert.ok(response, `${what}: closed without a response (${connection.error?.code ?? "no error"})`);
  assert.equal(response.status, 408, what);
  assert.equal(response.headers["x-ms-error-code"], "request_timeout");
  assert.equal(response.headers.connection, "close");
  assert.equal(JSON.parse(response.body).error.code, "request_timeout");
  await connection.whenClosed();
}

test("requests whose headers or body never finish are answered 408 and closed at --body-timeout", { timeout: 60_000 }, async () => {
  await withServer(["--body-timeout", "1"], async (server) => {
    const neverEndingChunks = await RawConnection.open(server.url);
    await neverEndingChunks.write(postHead("chunked"));
    await neverEndingChunks.write(chunk('{"messages": ['));

    const shortBody = await RawConnection.open(server.url);
    await shortBody.write(postHead({ contentLength: 100 }));
    await shortBody.write('{"messages": [');

    // 3.5 MB of a 4 MB body (under the 4 MiB limit), then nothing.
    const stalledUpload = await RawConnection.open(server.url);
    await stalledUpload.write(postHead({ contentLength: 4_000_000 }));
    await stalledUpload.write(Buffer.alloc(3_500_000, 0x20));

    const unfinishedHeaders = await RawConnection.open(server.url);
    await unfinishedHeaders.write("POST /chat/completions HTTP/1.1\r\nhost: test\r\n");

    await assertTimedOut(neverEndingChunks, "chunked body without its last chunk");
    await assertTimedOut(shortBody, "body shorter than its content-length");
    await assertTimedOut(stalledUpload, "upload stalled at 3.5 MB");
    await assertTimedOut(unfinishedHeaders, "headers never finished");

    // The timeout is on receiving the request, not on the server's work: a whole request still gets its answer.
    const ok = await fetch(`${server.url}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 2 }),
    });
    assert.equal(ok.status, 200);
  });
});

test("one address holds at most --max-connections-per-client connections; more are closed at once", { timeout: 60_000 }, async () => {
  await withServer(["--max-connections-per-client", "3"], async (server) => {
    const health = "GET /health HTTP/1.1\r\nhost: test\r\n\r\n";
    const held: RawConnection[] = [];
    for (let i = 0; i < 3; i++) {
      const connection = await RawConnection.open(server.url);
      await connection.write(health);
      assert.equal((await connection.readResponse())?.status, 200, `connection ${i + 1} of 3 is served`);
      held.push(connection);
    }
    const extra = await RawConnection.open(server.url);
    await extra.write(health);
    assert.equal(await extra.readResponse(), undefined, "a fourth connection is closed without an answer");
    assert.ok(extra.closed);

    // Once one of the three closes, a new connection is served again (the server sees the close asynchronously).
    held.pop()!.close();
    let status: number | undefined;
    for (let attempt = 0; attempt < 100 && status !== 200; attempt++) {
      const next = await RawConnection.open(server.url);
      await next.write(health);
      status = (await next.readResponse())?.status;
      next.close();
      if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(status, 200);
    for (const connection of held) connection.close();
  });
});

test("clients sending 5-16 MiB over the 4 MiB limit send it all and read the 413, every time", { timeout: 120_000 }, async () => {
  await withServer([], async (server) => {
    const block = Buffer.alloc(64 * 1024, 0x20);
    const sizes = [16, 16, 5, 8, 12, 16].map((n) => n * MiB);
    for (const [i, size] of sizes.entries()) {
      const chunked = i % 2 === 1;
      const what = `upload ${i + 1} (${size / MiB} MiB, ${chunked ? "chunked" : "content-length"})`;
      const connection = await RawConnection.open(server.url);
      let sentAll = await connection.write(postHead(chunked ? "chunked" : { contentLength: size }));
      for (let sent = 0; sent < size && sentAll; sent += block.length) sentAll = await connection.write(chunked ? chunk(block) : block);
      if (chunked && sentAll) sentAll = await connection.write("0\r\n\r\n");
      const failure = connection.error?.code ?? (sentAll ? undefined : "socket closed");
      assert.equal(failure, undefined, `${what}: the whole body was sent`);
      const response = await connection.readResponse();
      assert.ok(response, `${what}: no response (${connection.error?.code ?? "closed"})`);
      assert.equal(response.status, 413, what);
      assert.equal(JSON.parse(response.body).error.code, "payload_too_large");
      // Drained, the connection serves the next request.
      await connection.write("GET /health HTTP/1.1\r\nhost: test\r\n\r\n");
      assert.equal((await connection.readResponse())?.status, 200, `${what}: the connection is still usable`);
      connection.close();
    }
  });
});

