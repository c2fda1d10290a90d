// deploy/kubernetes: `kubectl kustomize` renders the base, the ha overlay and the Krkn example;
// every object validates against the Kubernetes schemas (kubernetes-models: types, required
// fields, enums; it does not flag unknown fields); the settings the README promises are there;
// and each chaos-signal config in a ConfigMap passes chaos-signal's own --check-config.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { ConfigMap, PersistentVolumeClaim, Service } from "kubernetes-models/v1";
import { Deployment } from "kubernetes-models/apps/v1";
import { Job } from "kubernetes-models/batch/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ROOT, run, runCli } from "./helpers/server_process.ts";
import { tempFile } from "./helpers/files.ts";

// deno-lint-ignore no-explicit-any
type Manifest = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; [key: string]: any };

/** The schema of each kind the manifests use; any other kind fails the test (add it here). */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "v1/ConfigMap": ConfigMap,
  "v1/Service": Service,
  "v1/PersistentVolumeClaim": PersistentVolumeClaim,
  "apps/v1/Deployment": Deployment,
  "batch/v1/Job": Job,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
};

function validate(object: Manifest): void {
  const Model = MODELS[`${object.apiVersion}/${object.kind}`];
  assert.ok(Model, `no schema for ${object.apiVersion} ${object.kind}`);
  try {
    new Model(object as never).validate();
  } catch (error) {
    assert.fail(`${object.kind} ${object.metadata.name}: ${(error as Error).message}`);
  }
}

async function render(dir: string): Promise<Manifest[]> {
  const result = await run("kubectl", ["kustomize", join(ROOT, "deploy", "kubernetes", dir)], undefined, 30_000);
  assert.equal(result.code, 0, `kubectl kustomize ${dir}: ${result.stderr}`);
  const objects = parseAllDocuments(result.stdout).map((document) => document.toJS() as Manifest);
  for (const object of objects) validate(object);
  return objects;
}

const find = (objects: Manifest[], kind: string, name?: string) => {
  const found = objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name || o.metadata.name.startsWith(`${name}-`)));
  assert.ok(found, `${kind} ${name ?? ""} rendered`);
  return found;
};

/** --check-config on a ConfigMap's config.yaml, with the token variable the Deployment sets from its Secret. */
async function checkConfig(configMap: Manifest): Promise<string> {
  const file = tempFile(configMap.data["config.yaml"]);
  const result = await runCli(["--check-config", "--config", file], { CHAOS_SIGNAL_OPS_TOKEN: "a-token-from-the-secret" });
  assert.equal(result.code, 0, `${configMap.metadata.name}: ${result.output}`);
  return result.output.trim();
}

const chaosSignalConfig = (objects: Manifest[]) => find(objects, "ConfigMap", "chaos-signal-config");
const server = (objects: Manifest[]) => find(objects, "Deployment", "chaos-signal");

test("the validator rejects a broken object (it does validate)", () => {
  const broken = { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "x" }, spec: { replicas: "three", selector: {}, template: { spec: { containers: [{ image: "x" }] } } } };
  assert.throws(() => validate(broken), /replicas|name/);
});

test("base: one replica on a PVC, Service 8081, probes, locked-down security context, resources, token from a Secret; its config passes --check-config", async () => {
  const objects = await render("base");
  assert.deepEqual(objects.map((o) => o.kind).sort(), ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Service"]);
  const deployment = server(objects);
  assert.equal(deployment.spec.replicas, 1);
  assert.equal(deployment.spec.strategy.type, "Recreate", "one writer of the state file");
  const pod = deployment.spec.template.spec;
  const [container] = pod.containers;
  assert.deepEqual(pod.securityContext.seccompProfile, { type: "RuntimeDefault" });
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(container.securityContext.readOnlyRootFilesystem, true);
  assert.equal(container.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(container.securityContext.capabilities.drop, ["ALL"]);
  assert.equal(container.livenessProbe.httpGet.path, "/healthz");
  assert.equal(container.readinessProbe.httpGet.path, "/readyz");
  assert.ok(container.resources.requests.memory && container.resources.limits.memory);
  assert.equal(container.env.find((e: { name: string }) => e.name === "CHAOS_SIGNAL_OPS_TOKEN").valueFrom.secretKeyRef.name, "chaos-signal-tokens");
  const mounts = Object.fromEntries(container.volumeMounts.map((m: { name: string; mountPath: string }) => [m.mountPath, m.name]));
  assert.deepEqual(mounts, { "/etc/chaos-signal": "config", "/data": "data", "/tmp": "tmp" });
  const claim = find(objects, "PersistentVolumeClaim");
  assert.equal(pod.volumes.find((v: { name: string }) => v.name === "data").persistentVolumeClaim.claimName, claim.metadata.name);
  const configMap = chaosSignalConfig(objects);
  assert.equal(pod.volumes.find((v: { name: string }) => v.name === "config").configMap.name, configMap.metadata.name);
  const service = find(objects, "Service", "chaos-signal");
  assert.equal(service.spec.ports[0].port, 8081);
  for (const [key, value] of Object.entries(service.spec.selector)) assert.equal(deployment.spec.template.metadata.labels[key], value);
  assert.match(await checkConfig(configMap), /^config OK: .*; listen 0\.0\.0\.0:8081; .*tokens: 1$/);
});

test("ha overlay: 3 replicas on etcd, a PodDisruptionBudget, anti-affinity, no PVC; its config passes --check-config", async () => {
  const objects = await render("overlays/ha");
  assert.ok(!objects.some((o) => o.kind === "PersistentVolumeClaim"), "no volume claim");
  const deployment = server(objects);
  assert.equal(deployment.spec.replicas, 3);
  assert.equal(deployment.spec.strategy.type, "RollingUpdate");
  const pod = deployment.spec.template.spec;
  assert.ok(pod.affinity.podAntiAffinity, "replicas spread over nodes");
  assert.ok(!pod.volumes.some((v: { persistentVolumeClaim?: unknown }) => v.persistentVolumeClaim));
  const budget = find(objects, "PodDisruptionBudget");
  assert.equal(budget.spec.minAvailable, 2);
  for (const [key, value] of Object.entries(budget.spec.selector.matchLabels)) assert.equal(deployment.spec.template.metadata.labels[key], value);
  const configMap = chaosSignalConfig(objects);
  assert.equal(pod.volumes.find((v: { name: string }) => v.name === "config").configMap.name, configMap.metadata.name);
  assert.match(await checkConfig(configMap), /; store etcd http:\/\/\S+:2379,.* \/chaos-signal\/default; /);
});

test("Krkn example: Krkn publishes its status, starts PAUSED; chaos-signal's relay reaches the Krkn pod's signal port through a Service", async () => {
  const objects = await render("examples/krkn");
  const krknConfig = parseYaml(find(objects, "ConfigMap", "krkn-config").data["config.yaml"]);
  assert.equal(krknConfig.kraken.publish_kraken_status, true);
  assert.equal(krknConfig.kraken.signal_state, "PAUSE");
  const configMap = chaosSignalConfig(objects);
  const [target] = parseYaml(configMap.data["config.yaml"]).chaos_signal.relays[0].targets;
  const url = new URL(target);
  const service = find(objects, "Service", url.hostname);
  const port = service.spec.ports.find((p: { port: number }) => p.port === Number(url.port));
  assert.ok(port, `the Service ${url.hostname} has port ${url.port}`);
  const job = find(objects, "Job", "krkn");
  const pod = job.spec.template;
  for (const [key, value] of Object.entries(service.spec.selector)) assert.equal(pod.metadata.labels[key], value, "the Service selects the Krkn pod");
  const signalPort = pod.spec.containers[0].ports.find((p: { name: string }) => p.name === port.targetPort);
  assert.equal(signalPort.containerPort, krknConfig.kraken.port, "… on the port Krkn's config serves the signal on");
  assert.match(await checkConfig(configMap), /; relays: krkn \(relay\); /);
});
