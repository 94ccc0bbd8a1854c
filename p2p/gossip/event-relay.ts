import type { Logger } from 'pino';
import type { EventLog } from '../../eventlog/index.ts';
import { SchemaError, type NodeEvent } from '../../schema/index.ts';
import { describeError } from '../errors.ts';
import type { EventGossipService } from './events.ts';

/** Counters of the relay, for metrics and tests. */
export interface EventRelayStats {
  /** Events stored in JetStream by this relay. */
  appended: number;
  /** Events JetStream already held (another relay, or the author's outbox, was first). */
  duplicates: number;
  /** Events dropped: the pending queue was full (their authors' outboxes still hold them), or the log refused them. */
  dropped: number;
  /** Failed appends (retried). */
  failures: number;
}

/** Republishes peers' gossiped events into SLOTFLOW_EVENTS whenever a NATS connection exists. */
export interface EventRelay {
  /** Attaches (NATS reachable) or detaches (NATS lost) the event log; pending events drain on attach. */
  setEventLog(eventLog: EventLog | undefined): void;
  /** Events waiting for an event log. */
  pending(): number;
  /** Resolves once nothing is pending, or false after `timeoutMs`. */
  flush(timeoutMs: number): Promise<boolean>;
  readonly stats: EventRelayStats;
  start(): void;
  stop(): Promise<void>;
}

/**
 * Every agent that reaches NATS relays what it hears, so an event reaches JetStream as long as
 * one peer of its author has NATS. Many relays append the same event: exactly-once storage
 * comes from the stream's de-duplication by `Nats-Msg-Id` (the event id) within its duplicate
 * window (a day by default), which EventLog.append sets. Events heard while no NATS is reachable
 * wait in a bounded queue; the author's outbox remains the durable copy.
 */
export function createEventRelay(init: {
  events: EventGossipService;
  eventLog?: EventLog;
  /** Largest number of events kept while no event log is attached (default 10 000). */
  maxPending?: number;
  log: Logger;
}): EventRelay {
  const log = init.log;
  const maxPending = init.maxPending ?? 10_000;
  const stats: EventRelayStats = { appended: 0, duplicates: 0, dropped: 0, failures: 0 };
  const queue = new Map<string, NodeEvent>();
  let eventLog = init.eventLog;
  let draining: Promise<void> | undefined;
  let retry: NodeJS.Timeout | undefined;
  let backoff = 250;
  let unsubscribe: (() => void) | undefined;
  let stopped = false;
  const idle = new Set<() => void>();

  function settle(): void {
    if (queue.size > 0) return;
    for (const resolve of idle) resolve();
    idle.clear();
  }

  async function drain(): Promise<void> {
    while (!stopped && eventLog && queue.size > 0) {
      const [id, event] = queue.entries().next().value as [string, NodeEvent];
      try {
        const { duplicate } = await eventLog.append(event);
        if (duplicate) stats.duplicates++;
        else stats.appended++;
        queue.delete(id);
        backoff = 250;
      } catch (err) {
        if (err instanceof SchemaError) {
          // Not transient: JetStream will never take it; do not let it block the queue.
          queue.delete(id);
          stats.dropped++;
          log.warn({ id, err: err.message }, 'dropping a relayed event the event log refuses');
          continue;
        }
        stats.failures++;
        log.debug({ err: describeError(err), pending: queue.size }, 'relaying an event failed; retrying');
        retry = setTimeout(kick, backoff);
        backoff = Math.min(backoff * 2, 5_000);
        return;
      }
    }
    settle();
  }

  function kick(): void {
    if (retry) clearTimeout(retry);
    retry = undefined;
    draining ??= drain().finally(() => {
      draining = undefined;
    });
  }

  function enqueue(event: NodeEvent): void {
    if (queue.has(event.id)) return;
    if (queue.size >= maxPending) {
      const oldest = queue.keys().next().value as string;
      queue.delete(oldest);
      stats.dropped++;
    }
    queue.set(event.id, event);
    if (eventLog) kick();
  }

  return {
    stats,
    pending: () => queue.size,
    setEventLog(next) {
      eventLog = next;
      backoff = 250;
      if (next) kick();
    },
    flush(timeoutMs) {
      if (queue.size === 0) return Promise.resolve(true);
      return new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          resolve(true);
        };
        const timer = setTimeout(() => {
          idle.delete(done);
          resolve(false);
        }, timeoutMs);
        idle.add(done);
      });
    },
    start() {
      stopped = false;
      unsubscribe ??= init.events.onEvent((event) => enqueue(event));
    },
    async stop() {
      stopped = true;
      unsubscribe?.();
      unsubscribe = undefined;
      if (retry) clearTimeout(retry);
      await draining;
    },
  };
}
