/**
 * TLS to etcd (`ca_file`, `cert_file`, `key_file`): a real etcd that serves HTTPS only and asks
 * for a client certificate (`--client-cert-auth`), certificates made by openssl at test time.
 * With the right CA and client certificate replicas on Deno and Bun share the signal; without the
 * CA or the certificate a replica does not start (one line, exit 2), and a replica whose etcd
 * comes back with a certificate it does not trust fails closed (PAUSE, /readyz 503, why in /status).
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { after, before, test } from "node:test";
import { runtime } from "../src/serve/mod.ts";
import { etcdStoreConfig } from "./helpers/etcd.ts";
import { tempDir } from "./helpers/files.ts";
import { freePort } from "./helpers/prometheus.ts";
import { run, runCli, type ServerProcess, startServer } from "./helpers/server_process.ts";
import { waitFor } from "./helpers/wait.ts";

const here = runtime().name;
const other = here === "deno" ? "bun" : "deno";
const MAX_STALENESS_MS = 1500;

/** A CA, and a certificate signed by it for `name` (127.0.0.1 for a server), in `dir`. */
function openssl(args: string[], dir: string): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
}
function makeCa(dir: string, name: string): void {
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", `/CN=${name}`, "-keyout", `${name}.key`, "-out", `${name}.crt`], dir);
}
function makeCert(dir: string, ca: string, name: string, usage: "serverAuth,clientAuth" | "clientAuth"): void {
  openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", `/CN=${name}`, "-keyout", `${name}.key`, "-out", `${name}.csr`], dir);
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=${usage}\n`);
  openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-days", "2", "-extfile", `${name}.ext`, "-out", `${name}.crt`], dir);
}

let dir: string;
let clientPort: number;
let peerPort: number;
let etcd: ChildProcess | undefined;
let etcdOutput = "";
const servers: ServerProcess[] = [];
const endpoint = () => `https://127.0.0.1:${clientPort}`;

/** (Re)starts the one etcd member on its ports and data dir, serving `serverCert`. */
async function startEtcd(serverCert: string): Promise<void> {
  etcd = spawn("etcd", [
    "--name", "tls",
    "--data-dir", join(dir, "data"),
    "--listen-client-urls", endpoint(),
    "--advertise-client-urls", endpoint(),
    "--listen-peer-urls", `http://127.0.0.1:${peerPort}`,
    "--initial-advertise-peer-urls", `http://127.0.0.1:${peerPort}`,
    "--initial-cluster", `tls=http://127.0.0.1:${peerPort}`,
    "--cert-file", join(dir, `${serverCert}.crt`),
    "--key-file", join(dir, `${serverCert}.key`),
    // etcd's JSON gateway calls its own gRPC server with the server certificate: trusted too.
    "--trusted-ca-file", join(dir, serverCert === "server" ? "ca.crt" : "both-ca.crt"),
    "--client-cert-auth",
  ], { stdio: ["ignore", "pipe", "pipe"] });
  etcd.stdout?.setEncoding("utf8").on("data", (c: string) => (etcdOutput = (etcdOutput + c).slice(-10_000)));
  etcd.stderr?.setEncoding("utf8").on("data", (c: string) => (etcdOutput = (etcdOutput + c).slice(-10_000)));
  const caOf = serverCert === "server" ? "ca" : "other-ca";
  await waitFor(async () => {
    const answer = await run("curl", ["-sf", "--max-time", "1", "--cacert", join(dir, `${caOf}.crt`), "--cert", join(dir, "client.crt"), "--key", join(dir, "client.key"), "-X", "POST", `${endpoint()}/v3/kv/range`, "-d", '{"key":"AA=="}'], undefined, 3000);
    return answer.code === 0;
  }, { what: "etcd to answer over TLS", timeoutMs: 15_000, diagnose: () => etcdOutput });
}

async function stopEtcd(): Promise<void> {
  const child = etcd;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once("exit", resolve));
  process.kill(child.pid!, "SIGKILL");
  await gone;
}

before(async () => {
  dir = tempDir("etcd-tls-");
  makeCa(dir, "ca");
  makeCert(dir, "ca", "server", "serverAuth,clientAuth");
  makeCert(dir, "ca", "client", "clientAuth");
  // A server certificate from another CA: what a replica trusting only "ca" must refuse.
  makeCa(dir, "other-ca");
  makeCert(dir, "other-ca", "impostor", "serverAuth,clientAuth");
  writeFileSync(join(dir, "both-ca.crt"), readFileSync(join(dir, "ca.crt"), "utf8") + readFileSync(join(dir, "other-ca.crt"), "utf8"));
  clientPort = await freePort();
  peerPort = await freePort();
  await startEtcd("server");
});

after(async () => {
  await Promise.all(servers.map((s) => s.stop("SIGKILL")));
  await stopEtcd();
});

const get = async (server: ServerProcess, path = "/") => {
  const response = await fetch(`${server.url}${path}`, { signal: AbortSignal.timeout(3000) });
  return { status: response.status, text: await response.text() };
};
const prefix = `/tls/${Date.now()}`;
/** A config file beside the certificates, naming them relative to itself. */
function config(keys: string): string {
  const file = join(dir, `config-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, `${etcdStoreConfig([endpoint()], prefix, MAX_STALENESS_MS)}${keys}`);
  return file;
}

test("etcd over TLS with client certificates: replicas on Deno and Bun with ca_file, cert_file, key_file share the signal", { timeout: 60_000 }, async () => {
  // One from the config file (paths relative to it), one from flags.
  const a = await startServer(["--config", config("    ca_file: ca.crt\n    cert_file: client.crt\n    key_file: client.key\n")]);
  servers.push(a);
  const b = await startServer([
    "--store", "etcd", "--etcd-endpoints", endpoint(), "--etcd-prefix", prefix,
    "--etcd-ca-file", join(dir, "ca.crt"), "--etcd-cert-file", join(dir, "client.crt"), "--etcd-key-file", join(dir, "client.key"),
  ], { runtime: other });
  servers.push(b);
  const stop = await fetch(`${a.url}/STOP`, { method: "POST", signal: AbortSignal.timeout(5000) });
  assert.deepEqual([stop.status, await stop.text()], [200, "STOP"]);
  assert.equal((await get(a)).text, "STOP");
  await waitFor(async () => (await get(b)).text === "STOP", { what: "STOP on the other replica", timeoutMs: 5000 });
  assert.equal((await get(b, "/readyz")).status, 200);
});

test("etcd over TLS: no CA, or no client certificate → the replica does not start, and says why (exit 2)", { timeout: 60_000 }, async () => {
  const noCa = await runCli(["--config", config("    cert_file: client.crt\n    key_file: client.key\n")]);
  assert.equal(noCa.code, 2, noCa.output);
  assert.match(noCa.output, /store etcd: cannot read .*https:\/\/127\.0\.0\.1/);
  console.log(`etcd TLS (${here}), no CA: ${noCa.output.trim().split("\n").at(-1)}`);
  const noCert = await runCli(["--config", config("    ca_file: ca.crt\n")]);
  assert.equal(noCert.code, 2, noCert.output);
  assert.match(noCert.output, /store etcd: cannot read /);
  const missing = await runCli(["--config", config("    ca_file: nowhere.crt\n    cert_file: client.crt\n    key_file: client.key\n")]);
  assert.equal(missing.code, 2, missing.output);
  assert.match(missing.output, /store\.ca_file \S*nowhere\.crt: cannot read it \(ENOENT\)/);
  const notPem = await runCli(["--config", config("    ca_file: ca.srl\n    cert_file: client.crt\n    key_file: client.key\n")]);
  assert.equal(notPem.code, 2, notPem.output);
  assert.match(notPem.output, /store\.ca_file \S*ca\.srl: not a PEM file/);
  const half = await runCli(["--config", config("    ca_file: ca.crt\n    cert_file: client.crt\n")]);
  assert.equal(half.code, 2, half.output);
  assert.match(half.output, /store\.cert_file and store\.key_file: give both/);
});

test("etcd over TLS: etcd back with a certificate the replica does not trust → PAUSE, /readyz 503, why in /status; trusted again → the stored signal", { timeout: 60_000 }, async () => {
  const replica = await startServer(["--config", config("    ca_file: ca.crt\n    cert_file: client.crt\n    key_file: client.key\n")]);
  servers.push(replica);
  const run = await fetch(`${replica.url}/RUN?force=true`, { method: "POST", signal: AbortSignal.timeout(5000) });
  assert.equal(run.status, 200, await run.text());
  await stopEtcd();
  await startEtcd("impostor");
  await waitFor(async () => (await get(replica)).text === "PAUSE", { what: "PAUSE while etcd's certificate is not trusted", timeoutMs: MAX_STALENESS_MS + 3000 });
  assert.equal((await get(replica, "/readyz")).status, 503);
  // PAUSE may come while etcd is down (connection refused) before the impostor listens: wait
  // for the reason to become the certificate's.
  const storeStatus = async () => (JSON.parse((await get(replica, "/status")).text) as { store: { current: boolean; detail: string | null } }).store;
  const TLS_REASON = /no contact with etcd .*(certificate|issuer|UnknownIssuer|self.signed|verify)/i;
  await waitFor(async () => TLS_REASON.test((await storeStatus()).detail ?? ""), { what: "the certificate named in /status store.detail", timeoutMs: 10_000 });
  const store = await storeStatus();
  assert.equal(store.current, false);
  console.log(`etcd TLS (${here}), an untrusted etcd certificate: /status store.detail = ${store.detail}`);
  assert.equal((await get(replica)).text, "PAUSE");
  await stopEtcd();
  await startEtcd("server");
  await waitFor(async () => (await get(replica)).text === "RUN", { what: "RUN again once etcd is trusted", timeoutMs: 10_000 });
});
