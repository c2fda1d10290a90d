/**
 * Why a fetch failed, in a few words: the runtimes wrap the socket error
 * (ECONNREFUSED, ENOTFOUND) in a TypeError whose own message says little.
 */
export function fetchFailure(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } })?.cause;
  return cause?.code ?? cause?.message ?? (error as Error)?.message ?? String(error);
}

/**
 * The fetch failed because nothing listens there (the host answered the
 * connect with a reset): Bun sets `code: "ECONNREFUSED"`, Node's fetch puts
 * it on `cause.code`, Deno only says so in `cause.message` ("Connection
 * refused (os error 111)", or Windows' "actively refused").
 */
export function connectionRefused(error: unknown): boolean {
  const candidates = [error, (error as { cause?: unknown })?.cause];
  return candidates.some((candidate) => {
    const { code, message } = (candidate ?? {}) as { code?: unknown; message?: unknown };
    return code === "ECONNREFUSED" || (typeof message === "string" && /ECONNREFUSED|connection refused|actively refused/i.test(message));
  });
}
