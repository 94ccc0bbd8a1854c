import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import { EVENTS_STREAM, NodeEvent, SchemaError, parseWith, relayEventSubject } from '../../schema/index.ts';
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

/** Stores a peer's event in SLOTFLOW_EVENTS as a relayed copy. */
export interface RelayPublisher {
  /** Appends the event unchanged; `duplicate` when the stream already held one with its id. */
  publish(event: NodeEvent): Promise<{ readonly seq: number; readonly duplicate: boolean }>;
}

/**
 * Relays over a NATS connection: each event goes, exactly as its author signed it, to
 * `slotflow.evt.relay.<author>.<relayerId>.<Type>`, the only relay subjects a node's NATS
 * credentials let it publish, with the event id as `Nats-Msg-Id` so the stream keeps one copy
 * whichever relay (or the author's own outbox) comes first.
 */
export function natsRelayPublisher(nc: NatsConnection, relayerId: string): RelayPublisher {
  const js = jetstream(nc);
  return {
    async publish(input) {
      const event = parseWith(NodeEvent, input, `relayed ${input.type} event`);
      const ack = await js.publish(
        relayEventSubject(event.nodeId, relayerId, event.type),
        JSON.stringify(event),
        {
          msgID: event.id,
          expect: { streamName: EVENTS_STREAM },
        },
      );
      return { seq: ack.seq, duplicate: ack.duplicate };
    },
  };
}

/** Republishes peers' gossiped events into SLOTFLOW_EVENTS whenever a NATS connection exists. */
export interface EventRelay {
  /** Attaches (NATS reachable) or detaches (NATS lost) the publisher; pending events drain on attach. */
  setPublisher(publisher: RelayPublisher | undefined): void;
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
 * one peer of its author has NATS. Many relays append the same event: the stream de-duplicates by
 * `Nats-Msg-Id` (the event id) within its duplicate window (a day by default), and past it the
 * readers' replay window counts a later copy once (see trust/reducer.ts). Events heard while no
 * NATS is reachable wait in a bounded queue; the author's outbox remains the durable copy.
 */
export function createEventRelay(init: {
  events: EventGossipService;
  publisher?: RelayPublisher;
  /** Largest number of events kept while no event log is attached (default 10 000). */
  maxPending?: number;
  log: Logger;
}): EventRelay {
  const log = init.log;
  const maxPending = init.maxPending ?? 10_000;
  const stats: EventRelayStats = { appended: 0, duplicates: 0, dropped: 0, failures: 0 };
  const queue = new Map<string, NodeEvent>();
  let publisher = init.publisher;
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
    while (!stopped && publisher && queue.size > 0) {
      const [id, event] = queue.entries().next().value as [string, NodeEvent];
      try {
        const { duplicate } = await publisher.publish(event);
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
        if (/permissions violation/i.test(describeError(err))) {
          // Not transient either: credentials issued before relays existed, or for another node.
          // The events stay queued, and their authors' outboxes still hold them.
          publisher = undefined;
          log.warn(
            { err: describeError(err) },
            'not relaying peers’ events: this node’s NATS credentials do not allow its relay subjects; issue it new ones (slotflow stack nats-auth --nodes ID)',
          );
          return;
        }
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
    if (publisher) kick();
  }

  return {
    stats,
    pending: () => queue.size,
    setPublisher(next) {
      publisher = next;
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
