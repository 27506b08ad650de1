/**
 * HTTPS served natively (issue 10): azure-core refuses to send an Entra bearer token over
 * http://, so the Azure client with a token needs TLS. The test makes its own CA and server
 * certificate (test/helpers/test-certificates.ts), starts the real CLI with --tls-cert/--tls-key
 * and a token issuer, and calls it with the JS Azure client trusting that CA; then replaces the
 * certificate files and sees a new connection get the new certificate.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, renameSync, rmSync } from "node:fs";
import { connect, type PeerCertificate } from "node:tls";
import { once } from "node:events";
import { join } from "node:path";
import ModelClient, { isUnexpected } from "@azure-rest/ai-inference";
import { AzureKeyCredential, type TokenCredential } from "@azure/core-auth";
import { ensureTestModel } from "../../src/model-factory/test-models.ts";
import { startTestIdentityProvider, type TestIdentityProvider } from "../../src/auth/test-jwks.ts";
import { runCli, startServer, type RunningServer } from "../helpers/start-server.ts";
import { createTestCertificateAuthority, issueTestServerCertificate, type TestCertificateAuthority } from "../helpers/test-certificates.ts";

let model: string;
let ca: TestCertificateAuthority;
let idp: TestIdentityProvider;
const hi = { messages: [{ role: "user" as const, content: "hi" }], max_tokens: 3 };

before(async () => {
  model = await ensureTestModel();
  ca = createTestCertificateAuthority();
  idp = await startTestIdentityProvider({ audience: "api://phiserve" });
});
after(async () => {
  await idp.close();
  rmSync(ca.dir, { recursive: true, force: true });
});

/** A TokenCredential that hands out tokens of the test identity provider, as DefaultAzureCredential would Entra's. */
function testCredential(): TokenCredential {
  return { getToken: async () => ({ token: await idp.sign({ sub: "alice" }), expiresOnTimestamp: Date.now() + 3_600_000 }) };
}

function azureClient(server: RunningServer) {
  return ModelClient(server.url, testCredential(), { tlsOptions: { ca: readFileSync(ca.caCertPath) }, retryOptions: { maxRetries: 0 } });
}

/** The certificate a new TLS connection to the server is given (verified against the test CA). */
async function servedCertificate(url: string): Promise<PeerCertificate> {
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port), ca: readFileSync(ca.caCertPath) });
  try {
    await once(socket, "secureConnect");
    return socket.getPeerCertificate();
  } finally {
    socket.destroy();
  }
}

test("--tls-cert/--tls-key: the ready line is https, the Azure JS client sends an Entra-style token over TLS; a replaced certificate is served to new connections", { timeout: 120_000 }, async () => {
  const first = issueTestServerCertificate(ca, "first");
  const server = await startServer([
    "--model", model, "--model-name", "phi-3.5-mini-instruct",
    "--tls-cert", first.certPath, "--tls-key", first.keyPath,
    "--jwt-issuer", idp.issuer, "--jwt-audience", "api://phiserve", "--jwks-uri", idp.jwksUri,
  ]);
  try {
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const response = await azureClient(server).path("/chat/completions").post({ body: hi });
    assert.equal(response.status, "200");
    if (isUnexpected(response)) throw response.body.error;
    assert.equal(response.body.choices.length, 1);
    assert.ok(response.body.usage.prompt_tokens > 0);
    // TLS does not replace authentication: a credential the server does not know gets 401.
    const stranger = ModelClient(server.url, new AzureKeyCredential("not-a-key-of-this-server"), { tlsOptions: { ca: readFileSync(ca.caCertPath) }, retryOptions: { maxRetries: 0 } });
    assert.equal((await stranger.path("/chat/completions").post({ body: hi })).status, "401");
    assert.equal((await servedCertificate(server.url)).subject.CN, first.commonName);

    // Renewal as tools do it: new files renamed over the served ones (the certificate first, the key after it).
    const second = issueTestServerCertificate(ca, "second");
    renameSync(second.certPath, first.certPath);
    renameSync(second.keyPath, first.keyPath);
    let served = first.commonName;
    for (let attempt = 0; attempt < 300 && served !== second.commonName; attempt++) {
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 100));
      served = String((await servedCertificate(server.url)).subject.CN);
    }
    assert.equal(served, second.commonName, "a new connection gets the new certificate");
    const again = await azureClient(server).path("/chat/completions").post({ body: hi });
    assert.equal(again.status, "200");
    assert.match(server.logs(), /"event":"tls.reloaded"/);
  } finally {
    await server.close();
  }
});

test("--tls-cert without --tls-key, or files that are not a certificate and key, stop serve with a clear message", async () => {
  const only = await runCli(["serve", "--port", "0", "--model", model, "--tls-cert", join(ca.dir, "ca.pem")]);
  assert.notEqual(only.code, 0);
  assert.match(only.stderr, /--tls-cert and --tls-key go together/);
  const swapped = issueTestServerCertificate(ca, "swapped");
  const bad = await runCli(["serve", "--port", "0", "--gpu", "cpu", "--model", model, "--tls-cert", swapped.keyPath, "--tls-key", swapped.certPath]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /not a usable certificate and key/);
});
