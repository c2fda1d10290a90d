// The container image, as built by `npm run image`: its metadata (non-root user, port, /data volume,
// OCI labels), and its entrypoint run the way a container runtime would — the image's user, cmd and
// env, under `chroot` in the mounted image (`podman run` is refused in this sandbox: cgroups,
// rlimits). run_all's image runner builds and mounts it, then runs this file and the HTTP
// conformance tests against it; under the plain deno/bun runs this file is skipped.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, chownSync, existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { run } from "./helpers/server_process.ts";
import { tempDir } from "./helpers/files.ts";

interface ImageConfig {
  User: string;
  Entrypoint: string[];
  Cmd: string[];
  Env: string[];
  WorkingDir: string;
  ExposedPorts: Record<string, unknown>;
  Volumes: Record<string, unknown>;
  Labels: Record<string, string>;
}

const root = process.env.CHAOS_SIGNAL_IMAGE_ROOT;
const skip = root ? false : "runs against the container image: node test/run_all.mjs image (needs buildah, root)";
const config = root ? JSON.parse(readFileSync(process.env.CHAOS_SIGNAL_IMAGE_CONFIG!, "utf8")) as ImageConfig : undefined;

/**
 * Runs the image's entrypoint and cmd, as its user, with its env, as a runtime would; `env` adds
 * to the image's (like `-e`): the tests listen on loopback and a free port, not 0.0.0.0:8081.
 */
async function runImage(env: Record<string, string>, extraArgs: string[] = [], imageRoot = root!) {
  const { User, Entrypoint, Cmd, Env } = config!;
  const imageEnv = Object.fromEntries(Env.map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]));
  const child = spawn("chroot", [`--userspec=${User}`, imageRoot, ...Entrypoint, ...Cmd, ...extraArgs], {
    env: { ...imageEnv, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return { child, exited, output: () => output };
}

async function listening(server: Awaited<ReturnType<typeof runImage>>): Promise<string> {
  for (const deadline = Date.now() + 20_000; Date.now() < deadline;) {
    const match = server.output().match(/listening on (http:\/\/127\.0\.0\.1:\d+)\//);
    if (match) return match[1]!;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  server.child.kill("SIGKILL");
  throw new Error(`the image's server did not listen:\n${server.output()}`);
}

test("image metadata: a non-root user, port 8081, a /data volume, the config file from env, OCI labels", { skip }, () => {
  const { User, Cmd, Env, WorkingDir, ExposedPorts, Volumes, Labels } = config!;
  assert.equal(User, "65532:65532");
  assert.deepEqual(Object.keys(ExposedPorts), ["8081/tcp"]);
  assert.deepEqual(Object.keys(Volumes), ["/data"]);
  assert.equal(WorkingDir, "/data");
  assert.deepEqual(Cmd, ["--state-file", "/data/state.json"]);
  assert.ok(Env.includes("CHAOS_SIGNAL_CONFIG=/etc/chaos-signal/config.yaml"), Env.join(" "));
  const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  assert.equal(Labels["org.opencontainers.image.version"], version);
  assert.equal(Labels["org.opencontainers.image.licenses"], "Apache-2.0");
  for (const key of ["title", "description", "source"]) assert.ok(Labels[`org.opencontainers.image.${key}`], key);
  const data = statSync(join(root!, "data"));
  assert.equal(`${data.uid}:${data.gid}`, User, "the user owns its volume");
});

test("the image's entrypoint as its user, cmd and env: serves, saves under /data, restores after a restart", { skip }, async () => {
  const env = { CHAOS_SIGNAL_ADDRESS: "127.0.0.1", CHAOS_SIGNAL_PORT: "0" };
  const first = await runImage(env);
  try {
    const url = await listening(first);
    assert.equal(await (await fetch(`${url}/`)).text(), "RUN");
    assert.equal((await fetch(`${url}/readyz`)).status, 200);
    assert.equal(await (await fetch(`${url}/PAUSE`, { method: "POST" })).text(), "PAUSE");
    const status = await (await fetch(`${url}/status`)).json();
    assert.equal(status.state.file, "/data/state.json");
    assert.equal(status.state.saved, true);
    // The process is the image's user, not root.
    const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${first.child.pid}/status`, "utf8"))?.[1];
    assert.equal(uid, config!.User.split(":")[0]);
  } finally {
    first.child.kill("SIGTERM");
  }
  assert.equal(await first.exited, 0, first.output());
  const saved = join(root!, "data", "state.json");
  assert.ok(existsSync(saved), "the state is on the volume");
  assert.equal(statSync(saved).uid, Number(config!.User.split(":")[0]));
  const second = await runImage(env);
  try {
    const url = await listening(second);
    assert.equal(await (await fetch(`${url}/`)).text(), "PAUSE", "restored from /data");
  } finally {
    second.child.kill("SIGTERM");
    await second.exited;
  }
});

test("the image's default config passes --check-config; a bad CHAOS_SIGNAL_PORT exits 2 naming it", { skip }, async () => {
  const { User, Entrypoint, Cmd, Env } = config!;
  const env = ["env", "-i", ...Env];
  const good = await run(env[0]!, [...env.slice(1), "/usr/sbin/chroot", `--userspec=${User}`, root!, ...Entrypoint, ...Cmd, "--check-config"]);
  assert.equal(good.code, 0, good.stderr);
  assert.equal(good.stdout, "config OK: /etc/chaos-signal/config.yaml; listen 0.0.0.0:8081; state file /data/state.json; sources: none; relays: none; tokens: 0\n");
  const bad = await run(env[0]!, [...env.slice(1), "CHAOS_SIGNAL_PORT=80000", "/usr/sbin/chroot", `--userspec=${User}`, root!, ...Entrypoint, ...Cmd, "--check-config"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^chaos-signal: CHAOS_SIGNAL_PORT: got "80000"; allowed: /);
});

/** Runs `command`, throwing with its output when it fails. */
async function must(command: string, args: string[]): Promise<void> {
  const result = await run(command, args);
  assert.equal(result.code, 0, `${command} ${args.join(" ")}: ${result.stderr}`);
}

test("as the Kubernetes manifests run it: a read-only root, /data and /tmp as volumes", { skip }, async () => {
  // The image's root bound read-only, with /proc and two fresh writable volumes (the PVC, an emptyDir).
  const readOnly = tempDir("image-ro-");
  const data = tempDir("image-data-");
  const tmp = tempDir("image-tmp-");
  const [uid, gid] = config!.User.split(":").map(Number) as [number, number];
  chownSync(data, uid, gid);
  chmodSync(tmp, 0o1777);
  const mounted: string[] = [];
  const mount = async (args: string[], path: string) => {
    await must("mount", [...args, path]);
    mounted.push(path);
  };
  try {
    await mount(["--bind", root!], readOnly);
    await must("mount", ["-o", "remount,bind,ro", readOnly]);
    await mount(["-t", "proc", "proc"], join(readOnly, "proc"));
    await mount(["--bind", data], join(readOnly, "data"));
    await mount(["--bind", tmp], join(readOnly, "tmp"));
    const server = await runImage({ CHAOS_SIGNAL_ADDRESS: "127.0.0.1", CHAOS_SIGNAL_PORT: "0" }, [], readOnly);
    try {
      const url = await listening(server);
      assert.equal(await (await fetch(`${url}/STOP`, { method: "POST" })).text(), "STOP");
      assert.equal((await (await fetch(`${url}/status`)).json()).state.saved, true);
    } finally {
      server.child.kill("SIGTERM");
    }
    assert.equal(await server.exited, 0, server.output());
    assert.ok(existsSync(join(data, "state.json")), "saved on the volume");
  } finally {
    for (const path of mounted.reverse()) await run("umount", ["--lazy", path]);
  }
});
