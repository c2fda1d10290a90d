/** chaos-signal's version, from package.json so there is one place to bump it. */
import packageJson from "../package.json" with { type: "json" };

export const VERSION: string = packageJson.version;
