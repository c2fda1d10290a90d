// PreparedResponse (src/serve/types.ts): the answer to a GET / poll on Node.js, written by the
// serve file as it is; to anyone else (a library user's adapter, a test) it is a Response like
// textResponse's, made on first use.
import { test } from "node:test";
import assert from "node:assert/strict";
import { KNOWN_BODIES, PreparedResponse } from "../src/serve/types.ts";
import { textResponse } from "../src/web/response.ts";

function prepared(text: string): Response {
  const template = textResponse(text);
  const head: Record<string, string> = {};
  template.headers.forEach((value, name) => (head[name] = value));
  return new PreparedResponse(200, head, KNOWN_BODIES.get(template)! as Uint8Array<ArrayBuffer>) as unknown as Response;
}

test("a PreparedResponse reads as the Response textResponse makes: status, headers, body", async () => {
  const response = prepared("PAUSE");
  assert.ok(response instanceof Response);
  assert.equal(response.status, 200);
  assert.equal(response.ok, true);
  assert.deepEqual([...response.headers], [...textResponse("PAUSE").headers]);
  assert.equal(await response.text(), "PAUSE");
  assert.equal(response.bodyUsed, true);
  await assert.rejects(response.text(), TypeError, "a body is read once, as a Response's");
});

test("each PreparedResponse has a body of its own: bytes(), arrayBuffer() and clone() work", async () => {
  const first = prepared("RUN");
  const copy = first.clone();
  assert.deepEqual(new Uint8Array(await first.arrayBuffer()), new TextEncoder().encode("RUN"));
  assert.equal(await copy.text(), "RUN");
  assert.equal(await prepared("RUN").text(), "RUN");
});
