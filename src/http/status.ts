/**
 * The JSON document served at `GET /status`. Field names are snake_case like
 * the config keys (`signal_state`, ...) and are documented in the README.
 */
import type { Claim, Override, StopLatch, View as ArbiterSnapshot } from "../core/snapshot.ts";
import type { PluginStatus } from "../plugin/host.ts";
import type { DashboardCard, PluginDescription } from "../plugin/api.ts";
import type { Signal } from "../core/signal.ts";
import type { StateHealth } from "../state/signal_store.ts";

export interface StatusInfo {
  readonly version: string;
  /** e.g. `deno 2.9.6`, `bun 1.4.5`. */
  readonly runtime: string;
  readonly startedAt: Date;
  readonly now: Date;
  /** Health and last observation of each plugin. */
  readonly sources?: readonly PluginStatus[];
  /** The sources that have not observed once yet (readiness does not wait for them). */
  readonly waiting?: readonly string[];
  /** Open event streams and pending long-polls. */
  readonly subscribers?: { readonly events: number; readonly longPolls: number };
  /** The state file's health; absent when the state is kept in memory only. */
  readonly state?: StateHealth;
  /** A shared store's status (etcd); absent for the file store. */
  readonly store?: StoreStatus;
  /** What a source's plugin says about itself (its dashboard cards); absent: none. */
  readonly describe?: (source: PluginStatus) => PluginDescription | undefined;
}

/** A source in `/status`: its status, and the dashboard cards its plugin describes (the relay's targets). */
export type SourceStatus = PluginStatus & { cards?: DashboardCard[] };

export interface ClaimStatus {
  source: string;
  state: Signal;
  reason: string;
  since: string;
  updated: string;
  actor?: string;
  /** When a timed pause ends by itself. */
  until?: string;
}

/** A shared store (etcd): whether this replica is current with it; GET / serves PAUSE while it is not. */
export interface StoreStatus {
  type: "etcd";
  endpoints: string[];
  key: string;
  current: boolean;
  last_contact: string | null;
  revision: string;
  /** This replica's id in the leader election. */
  replica: string;
  /** The leader's id as this replica last read it; null: none known. */
  leader: string | null;
  /** Whether this replica leads (runs the leader-only sources and relays). */
  leading: boolean;
  detail?: string;
}

export interface StatusDocument {
  signal: Signal;
  decided_by: string;
  changed_at: string;
  changes: number;
  stop_latch: { since: string; source: string; reason: string } | null;
  claims: ClaimStatus[];
  sources: SourceStatus[];
  /** The sources that have not observed once yet: their fail-closed claims hold meanwhile. */
  sources_waiting: string[];
  last_override: { at: string; reason: string; actor?: string; sources: string[] } | null;
  subscribers: { events: number; long_polls: number };
  /** `saved: false` while the file does not hold the current state (writes failing, retried). */
  state: { file: string; saved: boolean; error: string | null; since: string | null; failures: number } | null;
  store?: StoreStatus;
  version: string;
  runtime: string;
  started_at: string;
  uptime_seconds: number;
}

function claimStatus(claim: Claim): ClaimStatus {
  return {
    source: claim.source,
    state: claim.state,
    reason: claim.reason,
    since: claim.since.toISOString(),
    updated: claim.updated.toISOString(),
    ...(claim.actor === undefined ? {} : { actor: claim.actor }),
    ...(claim.until === undefined ? {} : { until: claim.until.toISOString() }),
  };
}

function overrideStatus(override: Override | null): StatusDocument["last_override"] {
  return override && {
    at: override.at.toISOString(),
    reason: override.reason,
    ...(override.actor === undefined ? {} : { actor: override.actor }),
    sources: [...override.sources],
  };
}

function latchStatus(latch: StopLatch | null): StatusDocument["stop_latch"] {
  return latch && { since: latch.since.toISOString(), source: latch.source, reason: latch.reason };
}

/** A plugin whose cards throw shows none: its status still shows. */
function withCards(source: PluginStatus, description: PluginDescription | undefined): SourceStatus {
  if (!description?.cards) return source;
  try {
    return { ...source, cards: [...description.cards(source)] };
  } catch {
    return source;
  }
}

export function statusDocument(snapshot: ArbiterSnapshot, info: StatusInfo): StatusDocument {
  return {
    signal: snapshot.signal,
    decided_by: snapshot.decidedBy,
    changed_at: snapshot.changedAt.toISOString(),
    changes: snapshot.seq,
    stop_latch: latchStatus(snapshot.latch),
    claims: snapshot.claims.map(claimStatus),
    sources: (info.sources ?? []).map((source) => withCards(source, info.describe?.(source))),
    sources_waiting: [...(info.waiting ?? [])],
    last_override: overrideStatus(snapshot.override),
    subscribers: { events: info.subscribers?.events ?? 0, long_polls: info.subscribers?.longPolls ?? 0 },
    state: info.state ? { ...info.state, since: info.state.since?.toISOString() ?? null } : null,
    ...(info.store ? { store: info.store } : {}),
    version: info.version,
    runtime: info.runtime,
    started_at: info.startedAt.toISOString(),
    uptime_seconds: Math.max(0, (info.now.getTime() - info.startedAt.getTime()) / 1000),
  };
}
