/**
 * A check that never overlaps itself: asked while one runs, it runs once more after it, however
 * often it was asked meanwhile, unless `stop` is aborted by then. Watch events come in bursts,
 * and two reads of one file at once could finish in the wrong order.
 */
export interface SerialCheck {
  (): void;
  /** Settles when the check running now (if any) is done. */
  settled(): Promise<void>;
}

export function serialCheck(run: () => Promise<void>, stop: AbortSignal): SerialCheck {
  let running: Promise<void> | undefined;
  let again = false;
  const check = (): void => {
    if (running) {
      again = true;
      return;
    }
    running = run().finally(() => {
      running = undefined;
      if (again && !stop.aborted) {
        again = false;
        check();
      }
    });
  };
  return Object.assign(check, { settled: () => running ?? Promise.resolve() });
}
