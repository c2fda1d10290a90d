/**
 * Testing a plugin (`@chaos-signal/chaos-signal/testing`): the conformance suite every signal
 * source passes, built-in or third-party, and the `waitFor` it is written with. Uses `node:test`.
 *
 * Re-exports only.
 *
 * @module
 */
export { sourceConformance } from "./src/testing/source_suite.ts";
export type { Rig, SourceHarness, SourceTraits } from "./src/testing/source_suite.ts";
export { waitFor } from "./src/testing/wait.ts";
export type { WaitOptions } from "./src/testing/wait.ts";
