/**
 * The cluster packaging, checked without a cluster or a Docker daemon (docs/DEPLOY.md "What was verified"):
 * the Kubernetes manifests are rendered (`kubectl kustomize` when kubectl is installed, else the
 * kustomizations' `resources` lists followed here: they use nothing else) and parsed, and their
 * relations to each other, to the Dockerfile and to the server's own metric names are checked.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const K8S = join(ROOT, "deploy/k8s");
const OVERLAYS = ["base", "autoscaling"] as const;

// Manifests are untyped YAML: `any` below, with each check naming what it reads.
type Manifest = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; [key: string]: any };

function parseManifests(text: string, where: string): Manifest[] {
  return parseAllDocuments(text).flatMap((doc) => {
    assert.equal(doc.errors.length, 0, `${where}: ${doc.errors.map((e) => e.message).join("; ")}`);
    const value = doc.toJS() as Manifest | null;
    return value === null ? [] : [value];
  });
}

/** The kustomization's resources, followed recursively (files and folders with their own kustomization.yaml). */
function renderByHand(dir: string): Manifest[] {
  const kustomization = parseManifests(readFileSync(join(dir, "kustomization.yaml"), "utf8"), dir)[0] as unknown as Record<string, unknown>;
  const fields = Object.keys(kustomization).filter((k) => k !== "apiVersion" && k !== "kind");
  assert.deepEqual(fields, ["resources"], `${dir}: only \`resources\` is followed by this test's renderer`);
  return (kustomization.resources as string[]).flatMap((entry) => {
    const path = join(dir, entry);
    return entry.endsWith(".yaml") ? parseManifests(readFileSync(path, "utf8"), path) : renderByHand(path);
  });
}

const hasKubectl = spawnSync("kubectl", ["version", "--client"], { stdio: "ignore" }).status === 0;

function render(overlay: string): Manifest[] {
  const byHand = renderByHand(join(K8S, overlay));
  if (!hasKubectl) return byHand;
  const rendered = parseManifests(execFileSync("kubectl", ["kustomize", join(K8S, overlay)], { encoding: "utf8" }), `kubectl kustomize ${overlay}`);
  // The fallback renderer must agree with kustomize on what the overlay contains.
  const names = (list: Manifest[]) => list.map((m) => `${m.kind}/${m.metadata.name}`).sort();
  assert.deepEqual(names(byHand), names(rendered));
  return rendered;
}

function only(manifests: Manifest[], kind: string, name?: string): Manifest {
  const found = manifests.filter((m) => m.kind === kind && (name === undefined || m.metadata.name === name));
  assert.equal(found.length, 1, `exactly one ${kind}${name ? `/${name}` : ""}, found ${found.length}`);
  return found[0]!;
}

/** The value following `flag` in an argument list. */
function argValue(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Dockerfile instructions (continuations joined, comments dropped), per stage. */
function dockerfileStages(): { from: string; steps: { instruction: string; args: string }[] }[] {
  const lines = readFileSync(join(ROOT, "Dockerfile"), "utf8").replace(/\\\n/g, " ").split("\n").filter((l) => l.trim() && !/^\s*#/.test(l));
  const stages: { from: string; steps: { instruction: string; args: string }[] }[] = [];
  for (const line of lines) {
    const [, instruction = "", args = ""] = /^\s*(\S+)\s*(.*)$/.exec(line) ?? [];
    if (instruction.toUpperCase() === "FROM") stages.push({ from: args, steps: [] });
    else stages.at(-1)?.steps.push({ instruction: instruction.toUpperCase(), args });
  }
  return stages;
}

for (const overlay of OVERLAYS) {
  test(`deploy/k8s/${overlay} renders${hasKubectl ? " (kubectl kustomize)" : " (kubectl not installed: resources followed by hand)"} and every manifest has a kind, a name and the app label`, () => {
    const manifests = render(overlay);
    assert.ok(manifests.length >= 5);
    for (const m of manifests) {
      assert.ok(m.apiVersion && m.kind && m.metadata?.name, JSON.stringify(m).slice(0, 120));
      assert.equal(m.metadata.labels?.["app.kubernetes.io/name"], "phiserve", `${m.kind}/${m.metadata.name}`);
    }
  });
}

test("the Deployment: /health for readiness, liveness and startup on the container's port; grace period covers preStop + --drain-timeout", () => {
  const manifests = render("base");
  const deployment = only(manifests, "Deployment", "phiserve");
  const pod = deployment.spec.template.spec;
  const container = pod.containers.find((c: any) => c.name === "phiserve");
  const port = container.ports.find((p: any) => p.name === "http");
  assert.equal(Number(argValue(container.args, "--port")), port.containerPort, "--port is the declared containerPort");
  assert.equal(argValue(container.args, "--host"), "0.0.0.0");
  for (const probe of ["readinessProbe", "livenessProbe", "startupProbe"]) {
    assert.equal(container[probe]?.httpGet?.path, "/health", probe);
    assert.ok([port.name, port.containerPort].includes(container[probe].httpGet.port), `${probe} port`);
  }
  const drainSeconds = Number(argValue(container.args, "--drain-timeout"));
  assert.ok(drainSeconds > 0, "--drain-timeout is set explicitly");
  const preStop = container.lifecycle?.preStop;
  const preStopSeconds = preStop?.sleep?.seconds ?? (preStop?.exec?.command?.[0] === "sleep" ? Number(preStop.exec.command[1]) : NaN);
  assert.ok(Number.isFinite(preStopSeconds), "a preStop pause");
  assert.ok(pod.terminationGracePeriodSeconds >= preStopSeconds + drainSeconds, `grace ${pod.terminationGracePeriodSeconds} s < preStop ${preStopSeconds} s + drain ${drainSeconds} s`);
  // The liveness probe must not kill a replica that is draining (503) before its drain can end.
  assert.ok(container.livenessProbe.periodSeconds * container.livenessProbe.failureThreshold >= drainSeconds, "liveness outlasts the drain");
  assert.deepEqual(deployment.spec.selector.matchLabels, Object.fromEntries(Object.entries(deployment.spec.template.metadata.labels).filter(([k]) => k in deployment.spec.selector.matchLabels)));
});

test("the Deployment: database and Redis URLs come from a Secret that the overlay defines with those keys", () => {
  const manifests = render("base");
  const container = only(manifests, "Deployment", "phiserve").spec.template.spec.containers[0];
  const env = new Map<string, any>(container.env.map((e: any) => [e.name, e]));
  for (const name of ["PHISERVE_DB_URL", "PHISERVE_REDIS_URL"]) {
    const ref = env.get(name)?.valueFrom?.secretKeyRef;
    assert.ok(ref, `${name} comes from a secretKeyRef, not a literal`);
    const secret = only(manifests, "Secret", ref.name);
    assert.ok(ref.key in { ...secret.stringData, ...secret.data }, `${ref.name} has ${ref.key}`);
  }
  // The server reads those variables (src/cli): a renamed variable would leave the replicas on SQLite, unshared.
  const cli = readFileSync(join(ROOT, "src/cli/commands/serve.ts"), "utf8") + readFileSync(join(ROOT, "src/store/create-store.ts"), "utf8");
  for (const name of ["PHISERVE_DB_URL", "PHISERVE_REDIS_URL", "PHISERVE_API_KEYS"]) assert.ok(cli.includes(name), `the server reads ${name}`);
});

test("the Deployment runs the image's non-root user with the models volume from the PVC; the Service targets the named port", () => {
  const manifests = render("base");
  const pod = only(manifests, "Deployment", "phiserve").spec.template.spec;
  const stages = dockerfileStages();
  const runtime = stages.at(-1)!;
  assert.ok(stages.length >= 2, "a multi-stage Dockerfile");
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(runtime.steps.filter((s) => s.instruction === "USER").at(-1)?.args, "node", "the image runs as `node` (uid 1000 in the official Node images)");
  assert.equal(pod.securityContext.runAsUser, 1000);
  const volumes = runtime.steps.find((s) => s.instruction === "VOLUME")!.args;
  const mount = pod.containers[0].volumeMounts.find((m: any) => m.mountPath === "/models");
  assert.ok(volumes.includes('"/models"') && mount, "models on the image's /models volume");
  const claim = pod.volumes.find((v: any) => v.name === mount.name).persistentVolumeClaim.claimName;
  only(manifests, "PersistentVolumeClaim", claim);
  const exposed = Number(runtime.steps.find((s) => s.instruction === "EXPOSE")!.args);
  assert.equal(pod.containers[0].ports[0].containerPort, exposed, "the containerPort is the image's EXPOSE");
  const service = only(manifests, "Service", "phiserve");
  assert.equal(service.spec.ports[0].targetPort, "http");
  for (const [k, v] of Object.entries(service.spec.selector)) assert.equal(only(manifests, "Deployment").spec.template.metadata.labels[k], v, "the Service selects the pods");
});

test("the Dockerfile: slim Node base, ONNX Runtime's CUDA download skipped, HEALTHCHECK on /health at the exposed port, serve on 0.0.0.0", () => {
  const stages = dockerfileStages();
  for (const stage of stages) assert.match(stage.from, /^node:\S*slim\S*( AS \S+)?$/i);
  const build = stages[0]!;
  assert.ok(build.steps.some((s) => s.instruction === "ENV" && /ONNXRUNTIME_NODE_INSTALL=skip/.test(s.args)), "ONNXRUNTIME_NODE_INSTALL=skip before npm install");
  const runtime = stages.at(-1)!;
  const healthcheck = runtime.steps.find((s) => s.instruction === "HEALTHCHECK")?.args ?? "";
  const exposed = runtime.steps.find((s) => s.instruction === "EXPOSE")?.args;
  assert.match(healthcheck, new RegExp(`127\\.0\\.0\\.1:${exposed}/health`));
  const cmd = JSON.parse(runtime.steps.find((s) => s.instruction === "CMD")!.args) as string[];
  assert.equal(argValue(cmd, "--port"), exposed);
  assert.equal(argValue(cmd, "--host"), "0.0.0.0");
  const ignore = readFileSync(join(ROOT, ".dockerignore"), "utf8");
  assert.match(ignore, /^\*\*$/m, ".dockerignore starts from nothing");
});

test("autoscaling: the HPA scales the Deployment on a metric the server exports, through the adapter rule and a ServiceMonitor on /metrics", () => {
  const manifests = render("autoscaling");
  const hpa = only(manifests, "HorizontalPodAutoscaler", "phiserve");
  assert.equal(hpa.spec.scaleTargetRef.kind, "Deployment");
  only(manifests, "Deployment", hpa.spec.scaleTargetRef.name);
  const metric = hpa.spec.metrics[0].pods.metric.name as string;
  const exported = [...readFileSync(join(ROOT, "src/observability/metrics.ts"), "utf8").matchAll(/name: "(phiserve_\w+)"/g)].map((m) => m[1]);
  assert.ok(exported.includes(metric), `${metric} is one of the server's metrics (${exported.join(", ")})`);
  assert.ok(hpa.spec.minReplicas >= 1 && hpa.spec.maxReplicas > hpa.spec.minReplicas);
  const adapter = parseManifests(only(manifests, "ConfigMap", "phiserve-prometheus-adapter-rules").data["config.yaml"], "adapter rules")[0] as any;
  const rule = adapter.rules.find((r: any) => r.name.as === metric);
  assert.ok(rule, `an adapter rule serves ${metric}`);
  assert.ok(rule.seriesQuery.startsWith(`${metric}{`), "the rule reads the exported series");
  const monitor = only(manifests, "ServiceMonitor", "phiserve");
  const endpoint = monitor.spec.endpoints[0];
  assert.equal(endpoint.path, "/metrics");
  assert.ok(only(manifests, "Service", "phiserve").spec.ports.some((p: any) => p.name === endpoint.port), "the monitor names a Service port");
  only(manifests, "Secret", endpoint.authorization.credentials.name); // /metrics takes the API's keys
});
