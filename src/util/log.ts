/** One line per event, time-stamped, to stdout (errors to stderr). */
import process from "node:process";
import type { SignalEvent as ArbiterEvent } from "../core/events.ts";
import { claimOf, type Snapshot, STOP_LATCH } from "../core/snapshot.ts";

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

/**
 * What holds a snapshot's signal, for a log line: the deciding claim (`kill: /tmp/kill says
 * STOP`), or the STOP latch and the claim that closed it.
 */
export function describeDecision(snapshot: Snapshot): string {
  if (snapshot.decidedBy === STOP_LATCH && snapshot.latch) {
    const { source, reason, since } = snapshot.latch;
    return `the STOP latch, closed by ${source} (${reason}) at ${since.toISOString()}, until a POST /RUN`;
  }
  const claim = claimOf(snapshot, snapshot.decidedBy);
  if (!claim) return snapshot.decidedBy;
  const by = claim.actor ? ` from ${claim.actor}` : "";
  return `${claim.source} (${claim.reason}${by})`;
}
