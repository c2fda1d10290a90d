/**
 * An example signal source written with chaos-signal's plugin API: it pauses
 * the chaos while a TCP endpoint (a database, a queue) does not accept
 * connections. About thirty lines, options validated at construction.
 *
 *   import { tcpSource } from "./examples/tcp_source.ts";
 *   const source = tcpSource({ name: "db", host: "10.0.0.5", port: 5432 });
 *
 * It passes the same conformance suite as the built-in sources
 * (test/sources_conformance_test.ts).
 */
import { connect } from "node:net";
import * as v from "valibot";
import { definePlugin, delay, durationSchema, PluginNameSchema, strictSection } from "../plugin.ts";

export const TcpSourceSchema = strictSection({
  name: PluginNameSchema,
  host: v.pipe(v.string("a host name or address"), v.nonEmpty("a host name or address")),
  port: v.pipe(v.number("a port number"), v.integer("a port number"), v.minValue(1, "a port number"), v.maxValue(65535, "a port number")),
  /** @default "5s" */
  interval: v.optional(durationSchema(50, 3_600_000), "5s"),
  /** What an unreachable endpoint claims. @default "PAUSE" */
  claim: v.optional(v.picklist(["PAUSE", "STOP"], "PAUSE or STOP"), "PAUSE"),
}, "a mapping of the tcp source's options");

/** Resolves whether a TCP connection opens within `timeoutMs`. */
function canConnect(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

export const tcpSource = definePlugin("tcp", TcpSourceSchema, (options) => ({
  name: options.name,
  kind: "tcp",
  async run(context) {
    const where = `${options.host}:${options.port}`;
    while (!context.abort.aborted) {
      const reachable = await canConnect(options.host, options.port, Math.min(options.interval, 2000));
      context.observe({ endpoint: where, reachable });
      if (reachable) context.release(`${where} accepts connections`);
      else context.claim(options.claim, `${where} does not accept connections`);
      await delay(options.interval, context.abort).catch(() => {});
    }
  },
}));
