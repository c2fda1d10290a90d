// The install paths (issue 12, items 1, 3 and 4): the npm package's manifest, the JSR dry run,
// the Deno tasks, and one version everywhere. The packed package itself runs the HTTP conformance
// tests in run_all.mjs's "package" run; Node.js runs them in its "node" run.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { VERSION } from "../mod.ts";
import { ROOT, run, startServer } from "./helpers/server_process.ts";
import { tempDir } from "./helpers/files.ts";

const DENO = join(ROOT, "node_modules", ".bin", "deno");
const json = (file: string) => JSON.parse(readFileSync(join(ROOT, file), "utf8"));
const pkg = json("package.json");
const denoJson = json("deno.json");

test("one version: src/version.ts, package.json and deno.json agree", () => {
  assert.equal(pkg.version, VERSION);
  assert.equal(denoJson.version, VERSION);
});

test("package.json is publishable: a chaos-signal command, only what runs, exports for Deno, Bun and Node.js", () => {
  assert.equal(pkg.private, undefined, "not private");
  assert.deepEqual(pkg.bin, { "chaos-signal": "dist/chaos-signal.js" });
  assert.match(pkg.scripts.prepack, /scripts\/build\.mjs/, "prepack builds dist/");
  assert.ok(!pkg.files.some((f: string) => /^(test|bench|examples|scripts)\b|^dist\/?$|^dist\/chaos-signal$/.test(f)), `files: ${pkg.files}`);
  for (const [name, conditions] of Object.entries(pkg.exports as Record<string, Record<string, string>>)) {
    assert.deepEqual(Object.keys(conditions), ["types", "bun", "deno", "default"], name);
    // Deno's exports name the same sources as the npm package's.
    assert.equal(conditions.deno, denoJson.exports[name], name);
    for (const condition of ["types", "bun", "deno"]) assert.ok(existsSync(join(ROOT, conditions[condition]!)), `${name} ${condition}`);
    assert.match(conditions.default!, /^\.\/dist\/lib\/\w+\.js$/, name);
  }
});

test("deno.json is JSR-ready: deno publish --dry-run passes (offline), publishing only what runs", async () => {
  assert.equal(denoJson.name, "@chaos-signal/chaos-signal");
  assert.equal(denoJson.license, pkg.license);
  // Without --allow-slow-types: every symbol of the public API has an explicit type, so JSR can
  // generate .d.ts files for Node.js users and documentation without inferring anything.
  const result = await run(DENO, ["publish", "--dry-run", "--allow-dirty"], undefined, 120_000);
  const output = result.stdout + result.stderr;
  assert.equal(result.code, 0, output);
  assert.match(output, /Dry run complete/);
  assert.doesNotMatch(output, /errors for slow types|missing-explicit/i, "no slow types");
  for (const path of ["test", "bench", "examples", "scripts", "dist", "node_modules"]) {
    assert.ok(!output.includes(`${ROOT}${path}/`), `${path}/ is not published`);
  }
  assert.ok(output.includes(`${ROOT}mod.ts`) && output.includes(`${ROOT}src/serve/node.ts`), output);
});

test("deno task build runs Bun's bundler (not node_modules/.bin/bun as JavaScript): the command it builds runs on Node.js", async () => {
  const out = tempDir();
  // --js: the single file and the library only; the compiled binary takes longer and is built by `npm test`.
  const build = await run(DENO, ["task", "build", "--js", "--outdir", out], undefined, 120_000);
  assert.equal(build.code, 0, build.stdout + build.stderr);
  assert.ok(existsSync(join(out, "lib", "mod.js")), "the library for Node.js");
  const file = join(out, "chaos-signal.js");
  assert.match(readFileSync(file, "utf8"), /^#!\/usr\/bin\/env node\n/, "a shebang for the npm command");
  const version = await run("node", [file, "--version"]);
  assert.equal(version.stdout, `chaos-signal ${VERSION}\n`, version.stderr);
});

test("deno task start:bun serves GET / on Bun", async () => {
  const server = await startServer([], { runtime: [DENO, "task", "start:bun"], timeoutMs: 60_000 });
  try {
    assert.match(server.output(), /\(bun [\d.]+\) listening on/);
    const response = await fetch(`${server.url}/`);
    assert.equal(await response.text(), "RUN");
  } finally {
    await server.stop();
  }
});
