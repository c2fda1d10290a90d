#!/usr/bin/env node
// Runs the whole test suite under Deno and under Bun, then prints one line
// "N passed, N failed" summed over both, and exits non-zero if anything
// failed or if a runner ran no test at all.
//
// The counts come from each runner's JUnit report, counting leaf test cases:
// Deno reports a describe() block as a test case of its own besides its steps.
//
// Usage: node test/run_all.mjs [typecheck|deno|bun|binary|single-file-deno|single-file-bun|node|package|etcd-deno|etcd-bun|image ...] [-- test files or dirs]
// With no names it runs them all: the type check, the whole suite under Deno and Bun, then (after `npm run build`)
// the HTTP conformance tests against the compiled binary, the bundled single file (on Deno, Bun and Node.js), the
// npm package's command (packed and installed into an empty directory), with the signal in etcd, and against the
// container image (built with buildah, its entrypoint run under chroot: test/helpers/image_rig.mjs).
import { spawn, spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildImage, mountImage, removeImage } from "./helpers/image_rig.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = join(root, "node_modules", ".bin");
const reports = join(root, "test-results");
const dashDash = process.argv.indexOf("--");
const wanted = process.argv.slice(2, dashDash === -1 ? undefined : dashDash);
const targets = dashDash === -1 ? ["test/"] : process.argv.slice(dashDash + 1);

/** The HTTP conformance tests that also run against the built artifacts (issue: ship one binary, one file). */
const CONFORMANCE = ["test/krkn_compat_test.ts", "test/bad_input_test.ts", "test/state_test.ts", "test/plugin_modules_test.ts"];

/**
 * The HTTP conformance tests that also run with the signal kept in etcd. Not state_test (the file
 * store) nor bad_input_test yet: its 1,000 POSTs half-close their sockets, and a POST that waits
 * for its save (a few ms on etcd) is then dropped unanswered by the runtime. Not etcd's doing:
 * with a state file (fsync) a half-closed POST /STOP gets no answer either, on Deno and on Bun
 * (both close the connection at the client's FIN while the answer is pending); with the memory
 * store the answer is written before the FIN is read.
 */
const ETCD_CONFORMANCE = ["test/krkn_compat_test.ts"];

const deno = (files) => (report) => [join(bin, "deno"), ["test", "-A", "--no-prompt", `--junit-path=${report}`, ...files]];
const bun = (files) => (report) => [join(bin, "bun"), ["test", "--timeout=60000", "--reporter=junit", `--reporter-outfile=${report}`, ...files]];

const runners = {
  deno: deno(targets),
  bun: bun(targets),
  // `npm run build` first (the default run does it): the compiled binary and the bundled file.
  binary: bun(CONFORMANCE),
  "single-file-deno": deno(CONFORMANCE),
  "single-file-bun": bun(CONFORMANCE),
  // The servers run on Node.js (node dist/chaos-signal.js; the package's command); the tests on Bun.
  // Node's own serve file also runs the event stream and long-poll tests (flushing, clients gone).
  // Node also resolves DNS (a relay's targets_dns) and talks TLS to etcd through its own serve file.
  node: bun([...CONFORMANCE, "test/events_test.ts", "test/long_poll_test.ts", "test/etcd_tls_test.ts", "test/relay_discovery_test.ts"]),
  package: bun(CONFORMANCE),
  // The HTTP contract with the signal in etcd (a one-member etcd started here).
  "etcd-deno": deno(ETCD_CONFORMANCE),
  "etcd-bun": bun(ETCD_CONFORMANCE),
  // The container image: its own checks (user, cmd, env, /data), then the HTTP conformance tests.
  image: bun(["test/image_test.ts", ...CONFORMANCE]),
};
const UNDER_TEST = { binary: "binary", "single-file-deno": "single-file", "single-file-bun": "single-file", node: "node", package: "package", image: "image" };

function decode(text) {
  return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, "&");
}

/** Leaf test cases of a JUnit report: {name, failed, skipped}. */
function leafCases(xml) {
  const cases = [];
  const pattern = /<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g;
  for (const match of xml.matchAll(pattern)) {
    const name = decode(/\bname="([^"]*)"/.exec(match[1])?.[1] ?? "");
    const classname = decode(/\bclassname="([^"]*)"/.exec(match[1])?.[1] ?? "");
    const inner = match[3] ?? "";
    cases.push({ name, classname, failed: /<(failure|error)\b/.test(inner), skipped: /<skipped\b/.test(inner) });
  }
  // Deno lists "suite" and also "suite > test": a name that prefixes another is a container.
  const names = new Set(cases.map((c) => c.name));
  const isContainer = (c) => [...names].some((other) => other.startsWith(`${c.name} > `));
  return cases.filter((c) => !isContainer(c));
}

rmSync(reports, { recursive: true, force: true });
// The tests' temporary files go here and are removed at the end (Deno's test
// runner fires no process "exit" event for the tests' own clean-up).
const scratch = join(reports, "tmp");
mkdirSync(scratch, { recursive: true });
let passed = 0, failed = 0, skipped = 0, broken = false;
const chosen = wanted.length ? wanted : dashDash === -1 ? ["typecheck", ...Object.keys(runners)] : ["deno", "bun"];
// The type check counts as one test: strict types are part of what CI proves (`npm run check`).
if (chosen.includes("typecheck")) {
  console.log("\n=== typecheck: npm run check");
  const check = spawnSync("npm", ["run", "--silent", "check"], { cwd: root, stdio: "inherit", env: { ...process.env, NO_COLOR: "1" } });
  console.log(`=== typecheck: ${check.status === 0 ? "1 passed, 0 failed" : "0 passed, 1 failed"}`);
  if (check.status === 0) passed += 1;
  else failed += 1;
}
if (chosen.some((name) => name in UNDER_TEST)) {
  console.log("\n=== build: npm run build");
  const build = spawnSync("npm", ["run", "build"], { cwd: root, stdio: "inherit" });
  if (build.status !== 0) {
    console.log("\n0 passed, 1 failed (the build failed)");
    process.exit(1);
  }
}
const installed = chosen.includes("package") ? installPackage() : undefined;
const etcd = chosen.some((name) => name.startsWith("etcd-")) ? await startEtcd() : undefined;
let image;
try {
  image = chosen.includes("image") ? prepareImage() : undefined;
} catch (error) {
  // Counted below as the image runner's failure: never green by accident.
  console.error(`image: cannot build or mount the image (${error.message}); it needs buildah and root`);
}
for (const name of chosen.filter((name) => name !== "typecheck")) {
  if (name === "image" && !image) {
    failed += 1;
    broken = true;
    continue;
  }
  const report = join(reports, `${name}.xml`);
  const [command, args] = runners[name](report);
  const underTest = name === "package" ? { CHAOS_SIGNAL_UNDER_TEST: `package:${installed}` } : UNDER_TEST[name] ? { CHAOS_SIGNAL_UNDER_TEST: UNDER_TEST[name], ...(name === "image" ? image.env : {}) } : name.startsWith("etcd-") ? { CHAOS_SIGNAL_TEST_ETCD: etcd.endpoint } : {};
  console.log(`\n=== ${name}: ${Object.entries(underTest).map(([k, v]) => `${k}=${v} `).join("")}${[command, ...args].join(" ")}`);
  const result = spawnSync(command, args, {
    cwd: root,
    stdio: "inherit",
    env: { ...process.env, NO_COLOR: "1", TMPDIR: scratch, ...underTest },
  });
  let cases = [];
  try {
    cases = leafCases(readFileSync(report, "utf8"));
  } catch (error) {
    console.error(`${name}: no JUnit report (${error.message})`);
  }
  const p = cases.filter((c) => !c.failed && !c.skipped).length;
  const f = cases.filter((c) => c.failed).length;
  const s = cases.filter((c) => c.skipped).length;
  console.log(`=== ${name}: ${p} passed, ${f} failed, ${s} skipped (exit ${result.status ?? result.signal})`);
  for (const c of cases.filter((c) => c.failed)) console.log(`    FAILED ${name}: ${c.classname} ${c.name}`);
  // A runner that crashed or ran nothing counts as one failure: never green by accident.
  if (result.status !== 0 && f === 0) broken = true;
  if (cases.length === 0) broken = true;
  passed += p;
  failed += f + (result.status !== 0 && f === 0 ? 1 : 0) + (cases.length === 0 && result.status === 0 ? 1 : 0);
  skipped += s;
}
image?.cleanup();
rmSync(scratch, { recursive: true, force: true });
if (installed) rmSync(installed, { recursive: true, force: true });
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 || broken ? 1 : 0);

/** The image built and mounted for the image runner; its env tells server_process.ts how to run it. */
function prepareImage() {
  const tag = "localhost/chaos-signal:test";
  console.log(`\n=== image: ${buildImage(root, tag)}`);
  const mounted = mountImage(tag, [root]);
  const cleanup = () => {
    mounted.cleanup();
    removeImage(tag);
  };
  process.on("exit", cleanup);
  const { User, Entrypoint } = mounted.config;
  const configFile = join(scratch, "image-config.json");
  writeFileSync(configFile, JSON.stringify(mounted.config));
  return {
    cleanup,
    env: {
      CHAOS_SIGNAL_IMAGE_ROOT: mounted.root,
      CHAOS_SIGNAL_IMAGE_USER: User,
      CHAOS_SIGNAL_IMAGE_ENTRYPOINT: JSON.stringify(Entrypoint),
      // The image's config (buildah inspect), for test/image_test.ts.
      CHAOS_SIGNAL_IMAGE_CONFIG: configFile,
    },
  };
}

/**
 * `npm pack` (its prepack builds dist/), then the tarball installed into an empty directory, as a
 * user would: returns that directory, whose node_modules/.bin/chaos-signal the "package" run
 * starts. The dependencies come from npm's cache when `npm ci` filled it (--prefer-offline).
 */
function installPackage() {
  const dir = mkdtempSync(join(tmpdir(), "chaos-signal-package-"));
  const npm = (args, cwd) => {
    console.log(`\n=== package: npm ${args.join(" ")}`);
    const result = spawnSync("npm", args, { cwd, stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" });
    if (result.status !== 0) {
      console.log(`\n0 passed, 1 failed (npm ${args[0]} failed)`);
      process.exit(1);
    }
    return result.stdout;
  };
  npm(["pack", "--silent", "--pack-destination", dir], root);
  const tarball = readdirSync(dir).find((name) => name.endsWith(".tgz"));
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "chaos-signal-user", private: true }));
  npm(["install", "--prefer-offline", "--no-audit", "--no-fund", "--silent", `./${tarball}`], dir);
  return dir;
}

/** One etcd member on free loopback ports with a scratch data dir, for the etcd-* runs. */
async function startEtcd() {
  const port = () => new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
  const [client, peer] = [await port(), await port()];
  const endpoint = `http://127.0.0.1:${client}`;
  const child = spawn("etcd", [
    "--data-dir", join(scratch, "etcd"), "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
    "--listen-peer-urls", `http://127.0.0.1:${peer}`, "--initial-advertise-peer-urls", `http://127.0.0.1:${peer}`,
    "--initial-cluster", `default=http://127.0.0.1:${peer}`,
  ], { stdio: "ignore" });
  process.on("exit", () => child.kill("SIGKILL"));
  for (const deadline = Date.now() + 15_000; Date.now() < deadline;) {
    const ok = await fetch(`${endpoint}/v3/kv/range`, { method: "POST", body: '{"key":"AA=="}' }).then((r) => r.ok, () => false);
    if (ok) return { endpoint };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("etcd did not start within 15 s");
}
