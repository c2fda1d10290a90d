/** Reads a YAML config file (Krkn's config.yaml, or chaos-signal's own). */
import { readFile } from "node:fs/promises";
import { parse } from "yaml";
import { type SettingsLayer, settingsFromConfig } from "./settings.ts";
import { ValidationError } from "./validation.ts";

export async function loadConfigFile(path: string): Promise<SettingsLayer> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const code = (error as { code?: string }).code ?? (error as Error).message;
    throw new ValidationError(`${path}: cannot read the config file (${code})`);
  }
  let document: unknown;
  try {
    document = parse(text);
  } catch (error) {
    // The yaml library's first line ends with a colon, before the excerpt it quotes: drop it.
    const firstLine = String((error as Error).message).split("\n")[0]!.replace(/:\s*$/, "");
    throw new ValidationError(`${path}: not valid YAML: ${firstLine}`);
  }
  return settingsFromConfig(document, path);
}
