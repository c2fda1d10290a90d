/**
 * Why a fetch failed, in a few words: the runtimes wrap the socket error
 * (ECONNREFUSED, ENOTFOUND) in a TypeError whose own message says little.
 */
export function fetchFailure(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } })?.cause;
  return cause?.code ?? cause?.message ?? (error as Error)?.message ?? String(error);
}
