/** A ServeConfig for in-process apps on the scripted fake engine (unit tests, the HTTP-path bench). */
import { DEFAULT_IMAGE_LIMITS, type DeploymentSettings, type ServeConfig } from "../../src/config/serve-config.ts";

export function fakeServeConfig(server: Partial<ServeConfig> = {}, deployment: Partial<DeploymentSettings> = {}): ServeConfig {
  return {
    host: "127.0.0.1",
    port: 0,
    apiKeys: [],
    databaseUrl: undefined,
    redisUrl: undefined,
    jwt: undefined,
    gpu: "cpu",
    defaultDeployment: undefined,
    singleModel: true,
    memoryBudgetBytes: undefined,
    idleUnloadMs: 0,
    requestTimeoutMs: 0,
    drainTimeoutMs: 1000,
    bodyLimitBytes: 4 * 1024 * 1024,
    bodyTimeoutMs: 30_000,
    maxConnectionsPerClient: 64,
    tls: undefined,
    images: DEFAULT_IMAGE_LIMITS,
    logLevel: "silent",
    ...server,
    deployments: server.deployments ?? [
      {
        name: undefined,
        modelPath: "fake.gguf",
        catalogModelId: "phi-3.5-mini-instruct",
        parallel: 1,
        maxQueue: 4,
        contextSize: undefined,
        threads: undefined,
        batchSize: 512,
        jsonPolicy: "constrained",
        systemRole: "azure",
        maxChoices: 16,
        toolEmulation: false,
        quota: undefined,
        ...deployment,
      },
    ],
  };
}
