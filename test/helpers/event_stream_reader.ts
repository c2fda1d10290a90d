/**
 * Reads an event stream (`GET /events`) in the background and lets a test
 * wait for what it expects. It parses the wire text on its own, with no help
 * from src/client/sse_parser.ts, so that a test does not trust the code it tests.
 */

export interface WireEvent {
  readonly id: string | undefined;
  readonly event: string | undefined;
  readonly data: string;
}

export class EventStreamReader {
  /** Everything received so far, as text. */
  text = "";
  /** Resolves with "done" when the server ended the stream cleanly, or with the error that ended it. */
  readonly ended: Promise<"done" | Error>;
  #ended: "done" | Error | undefined;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;

  constructor(readonly response: Response) {
    const reader = response.body!.getReader();
    this.#reader = reader;
    const decoder = new TextDecoder();
    this.ended = (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return "done" as const;
          this.text += decoder.decode(value, { stream: true });
        }
      } catch (error) {
        return error as Error;
      }
    })().then((outcome) => (this.#ended = outcome));
  }

  /** The complete `signal` events so far. */
  signals(): WireEvent[] {
    return this.blocks().filter((block) => block.event === "signal");
  }

  /** The complete blocks (ending in a blank line) that carry data. */
  blocks(): WireEvent[] {
    const complete = this.text.slice(0, this.text.lastIndexOf("\n\n") + 2);
    return complete.split("\n\n").filter(Boolean).flatMap((block) => {
      const fields = new Map<string, string>();
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        fields.set(line.slice(0, colon), line.slice(colon + 2));
      }
      return fields.has("data") ? [{ id: fields.get("id"), event: fields.get("event"), data: fields.get("data")! }] : [];
    });
  }

  /** The data of every `signal` event so far. */
  data(): string[] {
    return this.signals().map((event) => event.data);
  }

  heartbeats(): number {
    return this.text.split(": keepalive\n\n").length - 1;
  }

  /** Waits until `check()` is true; fails with what was awaited and what arrived. */
  async until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (this.#ended !== undefined) throw new Error(`the stream ended (${this.#ended}) before ${what}; received ${JSON.stringify(this.text)}`);
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received ${JSON.stringify(this.text)}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Disconnects, as a client that goes away mid-stream. */
  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
    await this.ended;
  }
}

/** `<seq>@<instance>` -> its parts. */
export function parseEventId(id: string | undefined): { seq: number; instance: string } {
  const match = /^(\d+)@([0-9a-f]+)$/.exec(id ?? "");
  if (!match) throw new Error(`not an event id of the form <seq>@<instance>: ${JSON.stringify(id)}`);
  return { seq: Number(match[1]), instance: match[2]! };
}
