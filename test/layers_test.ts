// The layers of src/ (README "Development"): each folder imports only the folders below it, so
// the tree reads top-down and the core stays free of I/O. Imports are read as text, type-only
// imports included: a type from a layer above is still a dependency on it.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Folder of src/ -> the folders (or files) it may import besides itself. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  core: [],
  util: ["core"],
  config: ["core", "util", "src/serve/types.ts"],
  web: ["core", "util", "config", "src/serve/types.ts"],
  state: ["core", "util", "config"],
  push: ["core", "util", "config", "web"],
  client: ["core", "util", "config"],
  // The registry defaults to the built-in plugins, which are written on the plugin API.
  plugin: ["core", "util", "config", "web", "state", "push", "plugins/mod.ts", "src/serve/types.ts"],
  http: ["core", "util", "config", "web", "state", "push", "plugin", "src/serve/types.ts"],
  serve: [],
  testing: ["core", "util", "config", "web", "state", "push", "plugin", "http"],
};

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : []
  );
}

/** The project files `file` imports (relative specifiers only). */
function imports(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  return [...text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)].map((m) => normalize(join(dirname(file), m[1]!)));
}

/** `src/core/x.ts` -> `core`; files outside the folders of src/ are named whole. */
function layerOf(path: string): string {
  const parts = path.split("/");
  return parts[0] === "src" && parts.length > 2 ? parts[1]! : path;
}

test("every folder of src/ imports only the layers below it", () => {
  const wrong: string[] = [];
  for (const file of sources("src")) {
    const layer = layerOf(file);
    if (!(layer in MAY_IMPORT)) continue; // src/server.ts and src/main.ts wire everything
    for (const target of imports(file)) {
      const other = layerOf(target);
      if (other === layer || MAY_IMPORT[layer]!.includes(other) || MAY_IMPORT[layer]!.includes(target)) continue;
      wrong.push(`${file} imports ${relative(ROOT, join(ROOT, target))} (${layer} may import ${MAY_IMPORT[layer]!.join(", ") || "nothing else"})`);
    }
  }
  assert.deepEqual(wrong, []);
});

test("every folder of src/ is placed in a layer", () => {
  const folders = readdirSync(join(ROOT, "src"), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  assert.deepEqual(folders.filter((name) => !(name in MAY_IMPORT)), []);
});

test("the core imports no runtime module: no node:, no npm package", () => {
  const found = sources("src/core").flatMap((file) =>
    [...readFileSync(join(ROOT, file), "utf8").matchAll(/(?:from|import)\s*\(?\s*"([^".][^"]*)"/g)].map((m) => `${file}: ${m[1]}`)
  );
  assert.deepEqual(found, []);
});
