// The tests' waitFor is the one `./testing` exports to plugin authors.
export { waitFor } from "../../src/testing/wait.ts";
export type { WaitOptions } from "../../src/testing/wait.ts";
