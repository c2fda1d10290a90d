/** Sends raw bytes over TCP and returns what came back before the server closed or the time ran out. */
import { connect } from "node:net";

export function rawRequest(
  host: string,
  port: number,
  data: string | Uint8Array,
  options: { waitMs?: number; closeAfterMs?: number } = {},
): Promise<string> {
  const waitMs = options.waitMs ?? 3000;
  return new Promise((resolve) => {
    let received = "";
    const socket = connect({ host, port });
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(received);
    };
    const timer = setTimeout(finish, options.closeAfterMs ?? waitMs);
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => {
      received += chunk;
      // One complete response is all these tests need.
      const end = received.indexOf("\r\n\r\n");
      if (end !== -1) {
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(received)?.[1] ?? 0);
        if (received.length >= end + 4 + length) finish();
      }
    });
    socket.on("error", finish);
    socket.on("close", finish);
    socket.write(data);
  });
}

/** The status code of a raw HTTP response, or null when there was none. */
export function statusOf(response: string): number | null {
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(response);
  return match ? Number(match[1]) : null;
}
