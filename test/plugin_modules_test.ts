// Third-party plugins from the config file (chaos_signal.plugins): imported at start, their types
// usable in sources: and relays: like the built-ins; a bad entry stops the start with exit 2.
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join, relative } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { loadPluginModules, pluginsFromConfig, settingsFromConfig } from "../mod.ts";
import { ROOT, run, runCli, runtimeCommand, startServer } from "./helpers/server_process.ts";
import { tempDir } from "./helpers/files.ts";
import { waitFor } from "./helpers/wait.ts";

const EXAMPLE = join(ROOT, "examples", "tcp_source.ts");
/** The compiled binary resolves no package (valibot) from disk for a module it imports: it takes one bundled file. */
const BINARY = ["binary", "image"].includes(process.env.CHAOS_SIGNAL_UNDER_TEST ?? "");
/** Node.js 20 imports no TypeScript: a plugin for it is JavaScript (here, the example bundled). */
const NODE = runtimeCommand().name === "node";

/** A config file in a new directory, with modules written beside it; returns its path. */
function configWith(yaml: string, modules: Record<string, string> = {}): string {
  const dir = tempDir();
  for (const [name, text] of Object.entries(modules)) writeFileSync(join(dir, name), text);
  const path = join(dir, "config.yaml");
  writeFileSync(path, yaml);
  return path;
}

/** A module exporting a duck-typed factory of `kind` (what definePlugin makes). */
const factoryModule = (kind: string, exportName = "factory") =>
  `export const ${exportName} = Object.assign((options) => ({ name: options.name, kind: ${JSON.stringify(kind)} }), { kind: ${JSON.stringify(kind)}, schema: {} });\n`;

function listen(): Promise<Server> {
  return new Promise((resolve) => {
    const server = createServer((socket) => socket.end());
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

async function closedPort(): Promise<number> {
  const server = await listen();
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test("a plugin module named in the config file gives a type that sources use: the example tcp source claims", async () => {
  const open = await listen();
  const down = await closedPort();
  const dir = tempDir();
  const config = join(dir, "config.yaml");
  // Relative to the config file, not to the working directory.
  let specifier = `./${relative(dir, EXAMPLE)}`;
  if (BINARY || NODE) {
    const bundled = await run(process.execPath, ["build", EXAMPLE, "--target", NODE ? "node" : "bun", "--format", "esm", "--outfile", join(dir, "tcp_source.js")]);
    assert.equal(bundled.code, 0, bundled.stderr);
    specifier = "./tcp_source.js";
  }
  writeFileSync(config, [
    "chaos_signal:",
    `  plugins: [${JSON.stringify(specifier)}]`,
    "  sources:",
    "    - type: tcp",
    "      name: db",
    "      host: 127.0.0.1",
    `      port: ${(open.address() as { port: number }).port}`,
    "      interval: 100ms",
    "    - type: tcp",
    "      name: queue",
    "      host: 127.0.0.1",
    `      port: ${down}`,
    "      interval: 100ms",
    "",
  ].join("\n"));
  const server = await startServer(["--config", config]);
  try {
    await waitFor(async () => (await (await fetch(`${server.url}/`)).text()) === "PAUSE", "the tcp source on a closed port to claim PAUSE");
    const status = await (await fetch(`${server.url}/status`)).json();
    const sources = Object.fromEntries(status.sources.map((s: { name: string; kind: string }) => [s.name, s.kind]));
    assert.deepEqual(sources, { db: "tcp", queue: "tcp" });
    const claims = Object.fromEntries(status.claims.map((c: { source: string; state: string }) => [c.source, c.state]));
    assert.equal(claims.queue, "PAUSE");
    assert.equal(claims.db, "RUN");
  } finally {
    await server.stop();
    open.close();
  }
});

test("a bad module, a missing export or a type name clash stops the start: exit 2, one line naming the entry", async () => {
  const cases: [string, Record<string, string>, RegExp][] = [
    ["[./missing.ts]", {}, /^chaos-signal: .*config\.yaml: chaos_signal\.plugins\[0\] \(\.\/missing\.ts\): cannot import it \(.+\)$/],
    ["[./broken.ts]", { "broken.ts": "export const = ;\n" }, /^chaos-signal: .*config\.yaml: chaos_signal\.plugins\[0\] \(\.\/broken\.ts\): cannot import it \(.+\)$/],
    ["[./nothing.ts]", { "nothing.ts": "export const answer = 42;\n" }, /^chaos-signal: .*config\.yaml: chaos_signal\.plugins\[0\] \(\.\/nothing\.ts\): exports no plugin factory \(make one with definePlugin and export it\)$/],
    ["[./file.ts]", { "file.ts": factoryModule("file") }, /^chaos-signal: .*config\.yaml: chaos_signal\.plugins\[0\] \(\.\/file\.ts\): type "file" is taken by the built-in file source$/],
    ["[./relay.ts]", { "relay.ts": factoryModule("relay") }, /^chaos-signal: .*config\.yaml: chaos_signal\.plugins\[0\] \(\.\/relay\.ts\): type "relay" is taken by the built-in relay$/],
    ["[./a.ts, ./b.ts]", { "a.ts": factoryModule("tcp"), "b.ts": factoryModule("tcp") }, /^chaos-signal: .*config\.yaml: chaos_signal\.plugins\[1\] \(\.\/b\.ts\): type "tcp" is also exported by chaos_signal\.plugins\[0\] \(\.\/a\.ts\)$/],
  ];
  for (const [tsList, tsModules, tsExpected] of cases) {
    // The same modules as .mjs for Node.js, which imports no .ts file (they hold plain JavaScript).
    const rename = (text: string) => (NODE ? text.replaceAll(".ts", ".mjs") : text);
    const list = rename(tsList);
    const modules = Object.fromEntries(Object.entries(tsModules).map(([name, text]) => [rename(name), text]));
    const expected = new RegExp(NODE ? tsExpected.source.replaceAll("\\.ts", "\\.mjs") : tsExpected.source);
    const config = configWith(`chaos_signal:\n  plugins: ${list}\n`, modules);
    const result = await runCli(["--config", config]);
    assert.equal(result.code, 2, `${list}: ${result.output}`);
    const lines = result.output.trimEnd().split("\n");
    assert.equal(lines.length, 1, `${list}: one line, got ${result.output}`);
    assert.match(lines[0]!, expected);
  }
});

test("a module's types serve sources and relays; a type nobody exports is still refused", async () => {
  const dir = tempDir();
  writeFileSync(join(dir, "kinds.ts"), [
    `import { definePlugin, PluginNameSchema, strictSection } from ${JSON.stringify(pathToFileURL(join(ROOT, "plugin.ts")).href)};`,
    `const Schema = strictSection({ name: PluginNameSchema }, "a mapping with name:");`,
    `export const pushTarget = definePlugin("push", Schema, (o) => ({ name: o.name, kind: "push", onChange() {} }));`,
    `export const pinger = definePlugin("ping", Schema, (o) => ({ name: o.name, kind: "ping", async run() {} }));`,
    `export const notAFactory = "ignored";`,
    "",
  ].join("\n"));
  const config = join(dir, "config.yaml");
  const layer = settingsFromConfig({
    chaos_signal: { plugins: ["./kinds.ts"], sources: [{ type: "ping", name: "p" }], relays: [{ type: "push", name: "out" }] },
  }, config);
  const registry = await loadPluginModules(layer.pluginModules ?? []);
  const plugins = pluginsFromConfig({ sources: layer.sources ?? [], relays: layer.relays ?? [] }, registry);
  assert.deepEqual(plugins.map((p) => [p.name, p.kind]), [["p", "ping"], ["out", "push"]]);
  assert.ok(Object.hasOwn(registry.sources, "file"), "the built-ins stay");
  assert.throws(
    () => pluginsFromConfig(settingsFromConfig({ chaos_signal: { sources: [{ type: "pong", name: "x" }] } }, config) as { sources: [] }, registry),
    /chaos_signal\.sources\[0\]\.type: got "pong"; allowed: one of file, webhook, alertmanager, prometheus, ping, push$/,
  );
});

test("the compiled binary cannot import a module that imports packages: it says so, and a bundled module works (above)", { skip: !BINARY && "only the compiled binary has this limit" }, async () => {
  const config = configWith(`chaos_signal:\n  plugins: [${JSON.stringify(EXAMPLE)}]\n`);
  const result = await runCli(["--config", config]);
  assert.equal(result.code, 2, result.output);
  assert.match(result.output.trimEnd(), /chaos_signal\.plugins\[0\] \(.*tcp_source\.ts\): cannot import it \(Cannot find package 'valibot'/);
});

test("a package is looked up in the node_modules beside the config file, as npm:name or name", async () => {
  const dir = tempDir();
  const pkg = join(dir, "node_modules", "chaos-fake-plugin");
  mkdirSync(pkg, { recursive: true });
  writeFileSync(join(pkg, "package.json"), JSON.stringify({ name: "chaos-fake-plugin", version: "1.0.0", type: "module", main: "index.js" }));
  writeFileSync(join(pkg, "index.js"), factoryModule("fake"));
  for (const specifier of ["npm:chaos-fake-plugin", "chaos-fake-plugin"]) {
    const layer = settingsFromConfig({ chaos_signal: { plugins: [specifier], sources: [{ type: "fake", name: "f" }] } }, join(dir, "config.yaml"));
    const registry = await loadPluginModules(layer.pluginModules ?? []);
    assert.deepEqual(pluginsFromConfig({ sources: layer.sources ?? [] }, registry).map((p) => p.kind), ["fake"], specifier);
  }
});
