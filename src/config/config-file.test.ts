import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfigFile, parseByteSize } from "./config-file.ts";

async function load(yaml: string) {
  const dir = await mkdtemp(join(tmpdir(), "phiserve-config-"));
  try {
    const path = join(dir, "phiserve.yaml");
    await writeFile(path, yaml);
    return await loadConfigFile(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const DEPLOYMENTS = "deployments:\n  - { name: a, model: a.gguf }\n";

test("transport keys: bodyTimeoutSeconds, maxConnectionsPerClient and tls are read", async () => {
  const file = await load(`bodyTimeoutSeconds: 20\nmaxConnectionsPerClient: 0\ntls: { cert: server.pem, key: server.key }\n${DEPLOYMENTS}`);
  assert.equal(file.bodyTimeoutSeconds, 20);
  assert.equal(file.maxConnectionsPerClient, 0);
  assert.deepEqual(file.tls, { cert: "server.pem", key: "server.key" });
});

test("transport keys are validated with their path: a negative timeout, a tls without its key, an unknown tls key", async () => {
  await assert.rejects(load(`bodyTimeoutSeconds: -1\n${DEPLOYMENTS}`), /\/bodyTimeoutSeconds: must be >= 0/);
  await assert.rejects(load(`tls: { cert: server.pem }\n${DEPLOYMENTS}`), /\/tls: must have required property 'key'/);
  await assert.rejects(load(`tls: { cert: a, key: b, ca: c }\n${DEPLOYMENTS}`), /\/tls: must NOT have additional properties \('ca'\)/);
});

test("engine keys per deployment: maxStepMs, padDecodeRows, promptCache and flashAttention are read and validated", async () => {
  const file = await load("deployments:\n  - { name: a, model: a.gguf, maxStepMs: 2000, padDecodeRows: false, promptCache: 1.5GiB, flashAttention: true }\n  - { name: b, model: b.gguf }\n");
  assert.equal(parseByteSize(file.deployments[0]!.promptCache!), 1.5 * 2 ** 30);
  assert.equal(file.deployments[1]!.promptCache, undefined);
  assert.deepEqual([file.deployments[0]!.flashAttention, file.deployments[1]!.flashAttention], [true, undefined]);
  assert.equal(file.deployments[0]!.maxStepMs, 2000);
  assert.equal(file.deployments[0]!.padDecodeRows, false);
  assert.equal(file.deployments[1]!.maxStepMs, undefined);
  assert.equal(file.deployments[1]!.padDecodeRows, undefined);
  await assert.rejects(load("deployments:\n  - { name: a, model: a.gguf, maxStepMs: 0 }\n"), /\/deployments\/0\/maxStepMs: must be >= 1/);
  await assert.rejects(load("deployments:\n  - { name: a, model: a.gguf, padDecodeRows: sometimes }\n"), /\/deployments\/0\/padDecodeRows: must be boolean/);
});
