import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { EVENTS_STREAM, eventSubject, type NodeEvent } from '../schema/index.ts';
import { describeError } from './errors.ts';
import type { Journal } from './journal.ts';

/** Publishes the journal's outbox to SLOTFLOW_EVENTS, oldest first, and sends heartbeats in between. */
export interface OutboxPublisher {
  /** Starts publishing over this connection. */
  start(nc: NatsConnection): void;
  stop(): Promise<void>;
  /** Resolves true once the outbox is empty, false when `timeoutMs` passes first. */
  flush(timeoutMs: number): Promise<boolean>;
}

export interface OutboxDeps {
  readonly journal: Journal;
  readonly log: Logger;
  readonly heartbeatMs: number;
  /** A fresh heartbeat event (not journaled: it is a sample, not a fact). */
  readonly heartbeat: () => Promise<NodeEvent>;
}

const BATCH = 50;

/**
 * At-least-once delivery of the outbox: each event is published with its id as Nats-Msg-Id and
 * removed from the journal only after JetStream acknowledged it, so a crash re-sends it and the
 * stream drops the duplicate. Heartbeats go out only when the outbox is empty, so they never
 * overtake a recorded event.
 */
export function createOutboxPublisher(deps: OutboxDeps): OutboxPublisher {
  const { journal, log } = deps;
  let stopped = false;
  let loop: Promise<void> | undefined;
  let wakeUp: (() => void) | undefined;
  const wake = () => {
    const w = wakeUp;
    wakeUp = undefined;
    w?.();
  };
  const unsubscribe = journal.onCommit((d) => {
    if (d.outbox.length > 0) wake();
  });

  async function publish(js: JetStreamClient, event: NodeEvent): Promise<void> {
    await js.publish(eventSubject(event), JSON.stringify(event), {
      msgID: event.id,
      expect: { streamName: EVENTS_STREAM },
      timeout: 5_000,
    });
  }

  async function run(nc: NatsConnection): Promise<void> {
    const js = jetstream(nc);
    let lastBeat = 0;
    let backoff = 250;
    while (!stopped) {
      const pending = journal.data.outbox.slice(0, BATCH);
      if (pending.length > 0) {
        const sent: string[] = [];
        let failed: unknown;
        for (const event of pending) {
          try {
            await publish(js, event);
            sent.push(event.id);
          } catch (err) {
            failed = err;
            break;
          }
        }
        if (sent.length > 0) {
          const done = new Set(sent);
          await journal
            .commit((d) => {
              d.outbox = d.outbox.filter((e) => !done.has(e.id));
            })
            .catch((err) => log.error({ err: describeError(err) }, 'cannot record published events'));
        }
        if (failed) {
          log.warn(
            { err: describeError(failed), pending: journal.data.outbox.length },
            'publishing events failed; retrying',
          );
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 5_000);
        } else {
          backoff = 250;
        }
        continue;
      }
      const due = lastBeat + deps.heartbeatMs - Date.now();
      if (due <= 0) {
        lastBeat = Date.now();
        try {
          await publish(js, await deps.heartbeat());
        } catch (err) {
          log.debug({ err: describeError(err) }, 'heartbeat not sent');
        }
        continue;
      }
      await Promise.race([new Promise<void>((resolve) => (wakeUp = resolve)), sleep(due)]);
    }
  }

  return {
    start(nc) {
      loop ??= run(nc).catch((err) => log.error({ err: describeError(err) }, 'outbox publisher stopped'));
    },
    async stop() {
      stopped = true;
      unsubscribe();
      wake();
      await Promise.race([loop, sleep(6_000)]);
    },
    async flush(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (journal.data.outbox.length > 0) {
        if (Date.now() >= deadline) return false;
        await sleep(25);
      }
      return true;
    },
  };
}
