/** One line per event, time-stamped, to stdout (errors to stderr). */
import process from "node:process";
import type { SignalEvent as ArbiterEvent } from "../core/events.ts";

export interface Logger {
  info(message: string): void;
  error(message: string): void;
}

/**
 * Writes never throw: when whoever reads the log goes away (`| head`, a
 * closed pipe), the signal server must keep answering Krkn's polls.
 */
function safeWriter(stream: NodeJS.WriteStream): (line: string) => void {
  stream.on("error", () => {});
  return (line) => {
    try {
      stream.write(line);
    } catch {
      // The log reader is gone; the server is not.
    }
  };
}

export function consoleLogger(now: () => Date = () => new Date()): Logger {
  const out = safeWriter(process.stdout);
  const err = safeWriter(process.stderr);
  // One event, one line: reasons come from outside (alert names, file contents, webhook bodies).
  const line = (message: string) => `${now().toISOString()} ${message.replace(/[\r\n]+/g, " ")}\n`;
  return {
    info: (message) => out(line(message)),
    error: (message) => err(line(message)),
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
