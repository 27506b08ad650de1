import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isLoopbackHost } from "./loopback.ts";

describe("isLoopbackHost", () => {
  it("accepts localhost, all of 127.0.0.0/8, ::1 and IPv4-mapped 127.x, bracketed or not", () => {
    for (const host of [
      "localhost",
      "LOCALHOST",
      "127.0.0.1",
      "127.0.0.2",
      "127.1.2.3",
      "127.255.255.255",
      "::1",
      "[::1]",
      "0:0:0:0:0:0:0:1",
      "::ffff:127.0.0.1",
      "::FFFF:127.0.0.2",
      "[::ffff:127.0.0.2]",
      // How `new URL("http://[::ffff:127.0.0.2]/").hostname` writes it.
      "[::ffff:7f00:2]",
    ]) {
      assert.equal(isLoopbackHost(host), true, host);
    }
  });

  it("refuses every-interface binds, other addresses, names and malformed input", () => {
    for (const host of [
      "0.0.0.0",
      "::",
      "[::]",
      "126.255.255.255",
      "128.0.0.1",
      "10.0.0.1",
      "::ffff:10.0.0.1",
      "::2",
      // IPv4-compatible (not mapped) form: not a loopback address.
      "::127.0.0.1",
      "127.0.0.256",
      "127.1",
      "localhost.example.com",
      "evil-localhost",
      "example.com",
      "",
      "[",
      "[]",
      "[127.0.0.1]",
      "[localhost]",
    ]) {
      assert.equal(isLoopbackHost(host), false, host);
    }
  });

  it("agrees with how URLs normalise hosts: every spelling of a loopback URL host passes", () => {
    for (const url of ["http://127.0.0.2:8080/keys", "http://[::1]/keys", "http://[0:0:0:0:0:0:0:1]/", "http://[::ffff:127.9.9.9]/", "http://LocalHost/"]) {
      assert.equal(isLoopbackHost(new URL(url).hostname), true, url);
    }
    assert.equal(isLoopbackHost(new URL("http://[::ffff:10.0.0.1]/").hostname), false);
  });
});
