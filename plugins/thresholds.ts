/**
 * The Prometheus poller's decisions, as a pure state machine: observations
 * (a value, an empty result, an error) in, the claim to report out. No
 * timers and no I/O, so every edge case has a plain unit test.
 *
 * - above `stop_above` -> STOP; above `pause_above` -> PAUSE; below
 *   `resume_below` -> RUN; in between, the previous claim holds (hysteresis);
 * - a move to a more severe claim needs `consecutive_breaches` observations
 *   in a row, a move back `consecutive_recoveries`;
 * - errors change nothing until `consecutive_errors` in a row; then
 *   `on_error` applies: `pause` (fail closed), `hold` or `ignore` (release);
 * - until the first observation, and after errors made it act, the state is
 *   unknown: with `on_error: pause` that is PAUSE, and the next observation
 *   decides at once, with no streak to wait for.
 */
import { severity, type Signal } from "../plugin.ts";

export interface ThresholdSettings {
  readonly pauseAbove: number;
  readonly stopAbove?: number | undefined;
  readonly resumeBelow: number;
  readonly consecutiveBreaches: number;
  readonly consecutiveRecoveries: number;
  readonly consecutiveErrors: number;
  readonly onError: "pause" | "hold" | "ignore";
  readonly onEmpty: "pause" | "hold" | "run";
}

export type Observation =
  | { readonly kind: "value"; readonly value: number }
  | { readonly kind: "empty" }
  | { readonly kind: "error"; readonly message: string };

export interface Decision {
  /** RUN means release. */
  readonly state: Signal;
  readonly reason: string;
}

export interface ThresholdCounters {
  breaches: number;
  recoveries: number;
  errors: number;
  unknown: boolean;
}

export class ThresholdGate {
  readonly #settings: ThresholdSettings;
  #state: Signal;
  #reason: string;
  #unknown = true;
  #breaches = 0;
  #recoveries = 0;
  #errors = 0;

  constructor(settings: ThresholdSettings) {
    this.#settings = settings;
    this.#state = settings.onError === "pause" ? "PAUSE" : "RUN";
    this.#reason = "no observation yet";
  }

  get decision(): Decision {
    return { state: this.#state, reason: this.#reason };
  }

  get counters(): ThresholdCounters {
    return { breaches: this.#breaches, recoveries: this.#recoveries, errors: this.#errors, unknown: this.#unknown };
  }

  observe(observation: Observation): Decision {
    if (observation.kind === "error") return this.#onError(observation.message);
    this.#errors = 0;
    const { wanted, why } = observation.kind === "empty" ? this.#emptyWants() : this.#valueWants(observation.value);
    if (this.#unknown) {
      this.#unknown = false;
      this.#breaches = this.#recoveries = 0;
      return this.#set(wanted ?? "RUN", why);
    }
    if (wanted === undefined || wanted === this.#state) {
      this.#breaches = this.#recoveries = 0;
      return this.#set(this.#state, why);
    }
    if (severity(wanted) > severity(this.#state)) {
      this.#recoveries = 0;
      this.#breaches += 1;
      if (this.#breaches >= this.#settings.consecutiveBreaches) {
        this.#breaches = 0;
        return this.#set(wanted, why);
      }
      return this.#set(this.#state, `${why} (breach ${this.#breaches} of ${this.#settings.consecutiveBreaches})`);
    }
    this.#breaches = 0;
    this.#recoveries += 1;
    if (this.#recoveries >= this.#settings.consecutiveRecoveries) {
      this.#recoveries = 0;
      return this.#set(wanted, why);
    }
    return this.#set(this.#state, `${why} (recovery ${this.#recoveries} of ${this.#settings.consecutiveRecoveries})`);
  }

  /** What a value asks for; `undefined` inside the hysteresis band (keep the claim). */
  #valueWants(value: number): { wanted: Signal | undefined; why: string } {
    const { pauseAbove, stopAbove, resumeBelow } = this.#settings;
    const shown = `value ${value}`;
    if (stopAbove !== undefined && value > stopAbove) return { wanted: "STOP", why: `${shown}, above stop_above ${stopAbove}` };
    if (value > pauseAbove) return { wanted: "PAUSE", why: `${shown}, above pause_above ${pauseAbove}` };
    if (value < resumeBelow || (value <= pauseAbove && resumeBelow === pauseAbove)) {
      return { wanted: "RUN", why: `${shown}, not above pause_above ${pauseAbove}` + (resumeBelow < pauseAbove ? ` and below resume_below ${resumeBelow}` : "") };
    }
    // Between resume_below and pause_above: from an unknown state that is no objection.
    return {
      wanted: this.#unknown ? "RUN" : undefined,
      why: `${shown}, between resume_below ${resumeBelow} and pause_above ${pauseAbove}`,
    };
  }

  #emptyWants(): { wanted: Signal | undefined; why: string } {
    switch (this.#settings.onEmpty) {
      case "pause":
        return { wanted: "PAUSE", why: "the query returned no data (on_empty: pause)" };
      case "run":
        return { wanted: "RUN", why: "the query returned no data (on_empty: run)" };
      case "hold":
        return { wanted: this.#unknown ? "RUN" : undefined, why: "the query returned no data (on_empty: hold)" };
    }
  }

  #onError(message: string): Decision {
    this.#errors += 1;
    const { consecutiveErrors, onError } = this.#settings;
    if (this.#errors < consecutiveErrors) {
      return this.#set(this.#state, `${this.#reason.replace(/ \[.*\]$/, "")} [error ${this.#errors} of ${consecutiveErrors}: ${message}]`);
    }
    const why = `${this.#errors} query errors in a row (on_error: ${onError}): ${message}`;
    switch (onError) {
      case "pause":
        this.#unknown = true;
        return this.#set("PAUSE", why);
      case "ignore":
        this.#unknown = true;
        return this.#set("RUN", why);
      case "hold":
        return this.#set(this.#state, why);
    }
  }

  #set(state: Signal, reason: string): Decision {
    this.#state = state;
    this.#reason = reason;
    return { state, reason };
  }
}
