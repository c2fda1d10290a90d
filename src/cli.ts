#!/usr/bin/env node
/**
 * The command-line program's entry for the bundle (dist/chaos-signal.js, the npm package's
 * `chaos-signal` command): runs on Node.js, Deno and Bun. mod.ts starts it too when run directly,
 * but Node.js 20 has no `import.meta.main`.
 */
import { runCli } from "./main.ts";

await runCli();
