/** A test source that makes its first observation only when the test says so (readiness tests). */
import type { Plugin } from "../../mod.ts";

export function gatedSource(name: string): { plugin: Plugin; release: () => void } {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const plugin: Plugin = {
    name,
    kind: "test",
    async run(context) {
      await gate;
      context.observe({ ok: true });
      await new Promise((resolve) => context.abort.addEventListener("abort", resolve, { once: true }));
    },
  };
  return { plugin, release: () => open() };
}
