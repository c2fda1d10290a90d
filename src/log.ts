/** One line per event, time-stamped, to stdout (errors to stderr). */
import process from "node:process";
import type { ArbiterEvent } from "./arbiter.ts";

export interface Logger {
  info(message: string): void;
  error(message: string): void;
}

export function consoleLogger(now: () => Date = () => new Date()): Logger {
  return {
    info: (message) => process.stdout.write(`${now().toISOString()} ${message}\n`),
    error: (message) => process.stderr.write(`${now().toISOString()} ${message}\n`),
  };
}

/** How an arbiter event reads in the log. */
export function describeEvent(event: ArbiterEvent): string {
  if (event.type === "change") {
    const by = event.cause.actor ? ` from ${event.cause.actor}` : "";
    return `signal ${event.signal} (was ${event.previous}): ${event.cause.source} ${event.cause.reason}${by}`;
  }
  const { claim } = event;
  const by = claim.actor ? ` from ${claim.actor}` : "";
  return `claim ${claim.source} ${claim.state} (was ${event.previous ?? "none"}): ${claim.reason}${by}`;
}
