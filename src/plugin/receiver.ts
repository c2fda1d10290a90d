/**
 * A receiver's acknowledgement: its 2xx goes out only once the claim it made is on disk, so a
 * `kill -9` right after the answer cannot lose what the sender was told was taken.
 */
import { HttpError } from "../web/response.ts";
import { messageOf } from "./host.ts";
import { within } from "../util/timers.ts";
import type { SourceContext } from "./api.ts";
import type { Signal } from "../core/signal.ts";

/**
 * Waits for a receiver's claim to be made: a RUN is made only once saved, so a refused one is
 * answered 503 (the sender tries again) and nothing changed.
 */
export async function claimMade(claim: Promise<Signal>): Promise<Signal> {
  try {
    return await claim;
  } catch (error) {
    throw new HttpError(503, `the change was not saved, so it was not made: ${messageOf(error)}`, {}, { cause: error });
  }
}

/** A disk that hangs must not hold the sender's request (nor its retries) forever. */
export const SAVE_WAIT_MS = 5000;

/**
 * Waits until `context.saved()`; when the write fails or takes longer than `waitMs`, throws 503
 * so that the sender (Alertmanager, a script) sends it again. The claim stays in effect here
 * either way: a PAUSE or a STOP is never withheld for want of a disk.
 */
export async function claimSaved(context: SourceContext, waitMs = SAVE_WAIT_MS): Promise<void> {
  try {
    await within(context.saved(), waitMs, () => new Error(`not written within ${waitMs / 1000} s`));
  } catch (error) {
    throw new HttpError(503, `the claim is in effect but was not saved (${messageOf(error)}), so it may not survive a restart: send it again`, {}, { cause: error });
  }
}
