// Builds what runs without the sources, with Bun's bundler (node scripts/build.mjs [--js] [--outdir DIR]):
//   dist/chaos-signal      the compiled binary (Bun runtime inside; skipped with --js)
//   dist/chaos-signal.js   the command as one ESM file for Node.js 20+, Deno and Bun (the npm `bin`)
//   dist/lib/*.js          the library entry points for Node.js (the npm `exports` "default")
// A script, not a chain of `bun build` commands, so that `npm run build` and `deno task build`
// run the same thing: Deno's task runner would run node_modules/.bin/bun as JavaScript.
import { spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
// The bun npm package's executable (node_modules/.bin/bun links to it; bun.exe on every platform), else Bun on the PATH.
const installed = join(root, "node_modules", "bun", "bin", "bun.exe");
const bun = existsSync(installed) ? installed : "bun";
const jsOnly = process.argv.includes("--js");
// --outdir DIR: elsewhere than dist/ (the tests build into a temporary directory).
const outIndex = process.argv.indexOf("--outdir");
const out = outIndex === -1 ? "dist" : process.argv[outIndex + 1];

function build(args) {
  console.log(`bun build ${args.join(" ")}`);
  const result = spawnSync(bun, ["build", ...args], { cwd: root, stdio: "inherit" });
  if (result.error) throw new Error(`cannot run ${bun}: ${result.error.message} (npm ci installs Bun)`);
  if (result.status !== 0) process.exit(result.status ?? 1);
}

if (!jsOnly) build(["--compile", "mod.ts", "--outfile", join(out, "chaos-signal")]);
// src/cli.ts, not mod.ts: Node.js 20 has no import.meta.main, and the command must run there.
build(["src/cli.ts", "--target", "node", "--format", "esm", "--outfile", join(out, "chaos-signal.js")]);
// Stale chunks of an earlier build must not be packed.
rmSync(resolve(root, out, "lib"), { recursive: true, force: true });
// import.meta.main is false: importing the library never starts the command.
build([
  "mod.ts", "client.ts", "plugin.ts", "testing.ts",
  "--target", "node", "--format", "esm", "--splitting", "--outdir", join(out, "lib"), "--define", "import.meta.main=false",
]);
