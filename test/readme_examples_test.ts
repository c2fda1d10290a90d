// The README's configuration examples work as pasted: chaos-signal's blocks
// build their sources, Alertmanager's passes amtool, the alerting rule passes promtool.
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { parse } from "yaml";
import { loadPluginModules, pluginsFromConfig, settingsFromConfig } from "../mod.ts";
import { tempFile } from "./helpers/files.ts";
import { ROOT, run, startServer } from "./helpers/server_process.ts";

const readme = readFileSync(join(ROOT, "README.md"), "utf8");

/** The ```yaml blocks whose first line is `# <label>`. */
function blocks(label: string): string[] {
  return [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((text) => text.startsWith(`# ${label}\n`));
}

test("every chaos-signal config block in the README builds its sources and relays", async () => {
  const found = blocks("chaos-signal config");
  assert.ok(found.length >= 6, `found ${found.length} blocks`);
  // The examples read their tokens from these variables, as a deployment would.
  process.env.ALERTMANAGER_TOKEN = "example-alertmanager-token";
  process.env.DEPLOY_TOKEN = "example-deploy-token";
  process.env.CHAOS_OPS_TOKEN = "example-ops-token";
  process.env.CHAOS_CI_TOKEN = "example-ci-token";
  for (const text of found) {
    // Module paths are relative to the config file: here, to the README beside the examples.
    const settings = settingsFromConfig(parse(text), join(ROOT, "README.md"));
    const plugins = pluginsFromConfig(settings, await loadPluginModules(settings.pluginModules ?? []));
    assert.ok(plugins.length > 0 || settings.auth?.tokens.length || settings.allowedOrigins?.length, text);
  }
});

test("the README's Alertmanager route and receiver pass amtool check-config", async () => {
  const [text] = blocks("alertmanager.yml");
  assert.ok(text, "the README has an alertmanager.yml block");
  const result = await run("amtool", ["check-config", tempFile(text, "alertmanager.yml")]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /SUCCESS/);
});

test("the README's alerting rules pass promtool check rules", async () => {
  const found = blocks("prometheus rules");
  assert.ok(found.length >= 2, `found ${found.length} prometheus rules blocks`);
  for (const text of found) {
    const result = await run("promtool", ["check", "rules", tempFile(text, "rules.yml")]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /SUCCESS: 1 rules found/);
  }
});

test("the README's first example (Krkn's curl commands) answers as printed, in its order, on the real server", async () => {
  const block = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!).find((text) => text.includes("curl -X POST http:/0.0.0.0:8081/STOP"));
  assert.ok(block, "the README has the curl block from Krkn's docs");
  const steps = [...block.matchAll(/^curl (.+?)\s+# -> (RUN|PAUSE|STOP)\b/gm)].map((m) => ({ args: m[1]!.split(/\s+/), expected: m[2]! }));
  assert.equal(steps.length, 4, block);
  const server = await startServer();
  try {
    for (const { args, expected } of steps) {
      const result = await run("curl", ["-sS", ...args.map((arg) => arg.replace("0.0.0.0:8081", `${server.host}:${server.port}`))]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, expected, `curl ${args.join(" ")}`);
    }
  } finally {
    await server.stop();
  }
});

test("the README's library example runs as printed (on a free port) and ends by itself", { skip: process.env.CHAOS_SIGNAL_UNDER_TEST ? "runs from source only" : false }, async () => {
  const section = readme.slice(readme.indexOf("## Using it as a library"));
  const example = /```ts\n([\s\S]*?)```/.exec(section)![1]!;
  assert.match(example, /createServer/);
  const file = join(ROOT, `.readme_example_${process.pid}.ts`);
  writeFileSync(file, example.replace("port: 8090", "port: 0"));
  try {
    const runtimeName = process.execPath.includes("deno") ? "deno" : "bun";
    const result = await run(process.execPath, runtimeName === "deno" ? ["run", "-A", file] : ["run", file]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /claim[\s\S]*database migration running[\s\S]*migration done/);
  } finally {
    rmSync(file, { force: true });
  }
});
