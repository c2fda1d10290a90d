// The README's configuration examples work as pasted: chaos-signal's blocks
// build their sources, Alertmanager's passes amtool, the alerting rule passes promtool.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { parse } from "yaml";
import { pluginsFromConfig, settingsFromConfig } from "../mod.ts";
import { tempFile } from "./helpers/files.ts";
import { ROOT, run } from "./helpers/server_process.ts";

const readme = readFileSync(join(ROOT, "README.md"), "utf8");

/** The ```yaml blocks whose first line is `# <label>`. */
function blocks(label: string): string[] {
  return [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((text) => text.startsWith(`# ${label}\n`));
}

test("every chaos-signal config block in the README builds its sources and relays", () => {
  const found = blocks("chaos-signal config");
  assert.ok(found.length >= 6, `found ${found.length} blocks`);
  // The examples read their tokens from these variables, as a deployment would.
  process.env.ALERTMANAGER_TOKEN = "example-alertmanager-token";
  process.env.DEPLOY_TOKEN = "example-deploy-token";
  process.env.CHAOS_OPS_TOKEN = "example-ops-token";
  process.env.CHAOS_CI_TOKEN = "example-ci-token";
  for (const text of found) {
    const settings = settingsFromConfig(parse(text), "README");
    const plugins = pluginsFromConfig(settings);
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
