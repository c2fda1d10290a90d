// The dashboard's script is typed TypeScript (src/http/ui/dashboard.ts), embedded as compiled text
// (src/http/ui/dashboard_script.gen.ts): the committed text must be what the source compiles to, and
// the page must carry it under its CSP hash. (test/ui_test.ts runs it in a real Chromium.)
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { GENERATED, generatedModule } from "../scripts/gen_dashboard.mjs";
import { DASHBOARD_SCRIPT } from "../src/http/ui/dashboard_script.gen.ts";
import { UI_CSP, UI_HTML } from "../src/http/ui_page.ts";
import { ROOT } from "./helpers/server_process.ts";

test("dashboard_script.gen.ts is what src/http/ui/dashboard.ts compiles to (else: npm run gen:ui)", () => {
  const committed = readFileSync(join(ROOT, GENERATED), "utf8");
  assert.ok(committed === generatedModule(), `${GENERATED} is stale: run npm run gen:ui and commit it`);
});

test("the page embeds the compiled script once, allowed by its SHA-256 in the CSP", () => {
  assert.ok(DASHBOARD_SCRIPT.length > 1000 && !/<\/script|<!--/i.test(DASHBOARD_SCRIPT));
  assert.ok(UI_HTML.includes(`<script>${DASHBOARD_SCRIPT}</script>`));
  assert.equal(UI_HTML.split("<script>").length, 2, "one script element");
  const hash = createHash("sha256").update(DASHBOARD_SCRIPT, "utf8").digest("base64");
  assert.match(UI_CSP, new RegExp(`script-src 'sha256-${hash.replace(/[+/]/g, "\\$&")}'(;|$)`));
  assert.doesNotMatch(DASHBOARD_SCRIPT, /innerHTML|insertAdjacentHTML|document\.write/, "server data goes in as text only");
});
