// The public entry points: the same subpath exports for Deno (deno.json) and npm/Bun
// (package.json), barrels that only re-export, and plugins and examples that use nothing else.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const json = (file: string) => JSON.parse(readFileSync(join(ROOT, file), "utf8"));
const ENTRY_POINTS = { ".": "./mod.ts", "./client": "./client.ts", "./plugin": "./plugin.ts", "./testing": "./testing.ts" };

/** Every module specifier a file imports or re-exports (static, dynamic and `import type`). */
function specifiers(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8").replace(/\/\*[\s\S]*?\*\/|^\s*\/\/.*$/gm, "");
  const found = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)["']([^"']+)["']/gm)].map((m) => m[1]!);
  return found;
}

function tsFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).filter((name) => name.endsWith(".ts")).map((name) => `${dir}/${name}`);
}

test("deno.json and package.json export the same entry points, and they exist", () => {
  const deno = json("deno.json");
  const npm = json("package.json");
  assert.deepEqual(deno.exports, ENTRY_POINTS);
  // npm's: the same sources for Bun, Deno and editors; Node.js gets their bundle (package_test.ts).
  assert.deepEqual(Object.fromEntries(Object.entries(npm.exports as Record<string, { deno: string }>).map(([name, c]) => [name, c.deno])), ENTRY_POINTS);
  assert.equal(deno.version, npm.version, "one version");
  assert.match(deno.name, /^@[a-z0-9-]+\/chaos-signal$/);
  for (const path of Object.values(ENTRY_POINTS)) assert.ok(existsSync(join(ROOT, path)), `${path} exists`);
});

test("the entry points other than mod.ts only re-export", () => {
  for (const file of ["client.ts", "plugin.ts", "testing.ts"]) {
    const code = readFileSync(join(ROOT, file), "utf8")
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .replace(/^\s*\/\/.*$/gm, "")
      .replace(/^export (type )?\{[^}]*\} from "[^"]+";$/gm, "")
      .trim();
    assert.equal(code, "", `${file} has only re-exports`);
  }
});

test("plugins import the plugin API entry point only (and each other)", () => {
  const allowed = (spec: string) =>
    spec === "../plugin.ts" || /^\.\/[a-z_]+\.ts$/.test(spec) || spec.startsWith("node:") || spec === "valibot";
  for (const file of tsFiles("plugins")) {
    for (const spec of specifiers(file)) assert.ok(allowed(spec), `${file} imports ${spec}: plugins import ../plugin.ts only`);
  }
});

test("examples import the public entry points only", () => {
  const allowed = (spec: string) =>
    ["../mod.ts", "../plugin.ts", "../client.ts"].includes(spec) || spec.startsWith("node:") || spec === "valibot";
  for (const file of tsFiles("examples")) {
    for (const spec of specifiers(file)) assert.ok(allowed(spec), `${file} imports ${spec}: examples import ../mod.ts, ../plugin.ts, ../client.ts only`);
  }
});

test("the entry points load and export what their users need", async () => {
  const plugin = await import("../plugin.ts");
  for (const name of ["definePlugin", "PluginNameSchema", "MaxBodyBytesSchema", "durationSchema", "httpUrl", "readJsonBody", "jsonResponse", "HttpError", "requireBearer", "delay"]) {
    assert.ok(name in plugin, `plugin.ts exports ${name}`);
  }
  const client = await import("../client.ts");
  assert.equal(typeof client.SignalClient, "function");
  const testing = await import("../testing.ts");
  assert.equal(typeof testing.sourceConformance, "function");
  assert.equal(typeof testing.waitFor, "function");
});
