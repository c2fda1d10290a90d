/**
 * Reads a Server-Sent Events stream incrementally, as the HTML standard
 * describes it (section 9.2.6): lines end in CRLF, LF or CR; `:` starts a
 * comment; `event`, `data`, `id` and `retry` are the fields; a blank line
 * dispatches the event. Written by hand because it is this small, and
 * because EventSource itself cannot send an Authorization header or be
 * bounded by a timeout.
 */

export interface ServerSentEvent {
  /** The `event` field, or `message` when there was none. */
  readonly type: string;
  /** The `data` lines, joined with newlines. */
  readonly data: string;
  /** The last `id` seen so far (ids persist across events), or "" for none. */
  readonly lastEventId: string;
}

export class EventStreamParser {
  readonly #decoder = new TextDecoder();
  #buffer = "";
  /** A chunk ended in CR: a LF at the start of the next one belongs to the same line end. */
  #skipLeadingLf = false;
  #started = false;
  #type = "";
  #data: string[] = [];
  #lastEventId = "";
  #retry: number | undefined;

  /** The reconnection time the server asked for (`retry:`), if it did. */
  get retry(): number | undefined {
    return this.#retry;
  }

  get lastEventId(): string {
    return this.#lastEventId;
  }

  /** Feeds the next chunk of the stream; returns the events it completed. */
  push(chunk: Uint8Array | string): ServerSentEvent[] {
    let text = typeof chunk === "string" ? chunk : this.#decoder.decode(chunk, { stream: true });
    if (text === "") return [];
    if (this.#skipLeadingLf && text.startsWith("\n")) text = text.slice(1);
    this.#skipLeadingLf = false;
    if (!this.#started) {
      this.#started = true;
      if (text.startsWith("\uFEFF")) text = text.slice(1);
    }
    this.#buffer += text;
    const events: ServerSentEvent[] = [];
    const lineEnd = /\r\n|\r|\n/g;
    let start = 0;
    for (let match = lineEnd.exec(this.#buffer); match; match = lineEnd.exec(this.#buffer)) {
      // A CR at the very end may be the first half of a CRLF: handled with the next chunk.
      if (match[0] === "\r" && match.index === this.#buffer.length - 1) this.#skipLeadingLf = true;
      const event = this.#line(this.#buffer.slice(start, match.index));
      if (event) events.push(event);
      start = lineEnd.lastIndex;
    }
    this.#buffer = this.#buffer.slice(start);
    return events;
  }

  #line(line: string): ServerSentEvent | undefined {
    if (line === "") return this.#dispatch();
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.#type = value;
    else if (field === "data") this.#data.push(value);
    else if (field === "id" && !value.includes("\0")) this.#lastEventId = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.#retry = Number(value);
    return undefined;
  }

  #dispatch(): ServerSentEvent | undefined {
    const data = this.#data;
    const type = this.#type || "message";
    this.#data = [];
    this.#type = "";
    if (data.length === 0) return undefined;
    return { type, data: data.join("\n"), lastEventId: this.#lastEventId };
  }
}
