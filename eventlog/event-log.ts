import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import {
  DomainEvent,
  EVENTS_STREAM,
  EVENTS_SUBJECTS,
  describeIssues,
  eventSubject,
  parseWith,
  type DomainEventInput,
} from '../schema/index.ts';
import { ensureStreams, type StreamLimits, DEFAULT_STREAM_LIMITS } from './streams.ts';

/** An event together with its position in SLOTFLOW_EVENTS. */
export interface LoggedEvent {
  readonly seq: number;
  readonly event: DomainEvent;
  /** The subject it was stored under (a node's event may be stored directly or as a relay). */
  readonly subject: string;
}

/** A stored message that is not a valid event; readers skip it and report it here. */
export interface InvalidEntry {
  readonly seq: number;
  readonly subject: string;
  readonly problem: string;
}

/** Result of appending one event. */
export interface AppendResult {
  readonly seq: number;
  /** True when the stream already held an event with this id (nothing new was stored). */
  readonly duplicate: boolean;
}

/** What to read: a sequence to start at, subject filters, and what to do with invalid entries. */
export interface ReadOptions {
  /** First sequence to deliver (default 1). */
  fromSeq?: number;
  /** Subject filters (default: every event). */
  filters?: string[];
  onInvalid?: (entry: InvalidEntry) => void;
  signal?: AbortSignal;
}

/** What to follow in batches: as for follow(), plus the most events one batch may hold. */
export interface BatchReadOptions extends ReadOptions {
  /** Upper bound on a batch (default 500); a batch also ends where the log does. */
  maxBatch?: number;
}

/** Publishes in flight at once when appending a batch; larger batches go in consecutive windows. */
export const APPEND_WINDOW = 1_000;

/** Append-only access to SLOTFLOW_EVENTS. */
export interface EventLog {
  /** Validates and appends one event; a re-sent event id is de-duplicated by the stream. */
  append(event: DomainEventInput): Promise<AppendResult>;
  /**
   * Validates every event, then publishes them in order with all publishes in flight before any
   * ack is awaited; results are in the same order. An invalid event fails the batch before any of
   * it reaches the stream; a failed publish fails the batch once every ack is in (re-sending the
   * batch is safe: the stream de-duplicates by event id).
   */
  appendBatch(events: readonly DomainEventInput[]): Promise<AppendResult[]>;
  /** Reads every stored event from `fromSeq` up to the end as it was when the call started. */
  replay(options?: ReadOptions): AsyncGenerator<LoggedEvent>;
  /** Reads from `fromSeq` and keeps delivering new events until the signal aborts. */
  follow(options?: ReadOptions): AsyncGenerator<LoggedEvent>;
  /**
   * As follow(), in batches: a batch ends at the newest stored event (or at `maxBatch`), so a
   * reader can apply a batch and then store its result once.
   */
  followBatches(options?: BatchReadOptions): AsyncGenerator<LoggedEvent[]>;
  /** Sequence of the newest stored event (0 when empty). */
  lastSeq(): Promise<number>;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
}

function decode(
  seq: number,
  subject: string,
  data: Uint8Array,
  onInvalid?: (e: InvalidEntry) => void,
): LoggedEvent | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(data));
  } catch (err) {
    onInvalid?.({ seq, subject, problem: `not JSON: ${(err as Error).message}` });
    return undefined;
  }
  const parsed = DomainEvent.safeParse(raw);
  if (!parsed.success) {
    onInvalid?.({ seq, subject, problem: describeIssues(parsed.error.issues, raw).join('; ') });
    return undefined;
  }
  return { seq, subject, event: parsed.data };
}

/** Opens the event log, creating the streams if needed. */
export async function openEventLog(
  nc: NatsConnection,
  limits: StreamLimits = DEFAULT_STREAM_LIMITS,
): Promise<EventLog> {
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, limits);
  const js = jetstream(nc);

  async function appendBatch(inputs: readonly DomainEventInput[]): Promise<AppendResult[]> {
    const events = inputs.map((input) =>
      parseWith(DomainEvent, input, `${(input as { type?: string }).type ?? 'event'} event`),
    );
    const results: AppendResult[] = [];
    for (let from = 0; from < events.length; from += APPEND_WINDOW) {
      // Issued in order on one connection, so the stream stores them in order.
      const acks = await Promise.allSettled(
        events.slice(from, from + APPEND_WINDOW).map((event) =>
          js.publish(eventSubject(event), JSON.stringify(event), {
            msgID: event.id,
            expect: { streamName: EVENTS_STREAM },
          }),
        ),
      );
      for (const ack of acks) {
        if (ack.status === 'rejected') throw ack.reason;
        results.push({ seq: ack.value.seq, duplicate: ack.value.duplicate });
      }
    }
    return results;
  }

  async function lastSeq(): Promise<number> {
    const info = await jsm.streams.info(EVENTS_STREAM);
    return info.state.last_seq;
  }

  async function* replay(options: ReadOptions = {}): AsyncGenerator<LoggedEvent> {
    const fromSeq = Math.max(1, options.fromSeq ?? 1);
    // An ephemeral pull consumer tells us exactly how many messages match, so a bounded
    // replay ends without waiting for a timeout, even when nothing matches.
    const info = await jsm.consumers.add(EVENTS_STREAM, {
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: fromSeq,
      filter_subjects: options.filters ?? [EVENTS_SUBJECTS],
      inactive_threshold: nanos(30_000),
      mem_storage: true,
    });
    try {
      let pending = info.num_pending;
      if (pending === 0) return;
      const consumer = await js.consumers.get(EVENTS_STREAM, info.name);
      while (pending > 0 && !options.signal?.aborted) {
        const batch = await consumer.fetch({ max_messages: Math.min(pending, 1000), expires: 5000 });
        let got = 0;
        for await (const m of batch) {
          got++;
          pending = m.info.pending;
          const logged = decode(m.seq, m.subject, m.data, options.onInvalid);
          if (logged) yield logged;
        }
        if (got === 0) break; // messages vanished (trimmed) while we read
      }
    } finally {
      await jsm.consumers.delete(EVENTS_STREAM, info.name).catch(() => undefined);
    }
  }

  /** Every stored message from `fromSeq` on, as it arrives, until the signal aborts. */
  async function* messages(options: ReadOptions): AsyncGenerator<JsMsg> {
    const consumer = await js.consumers.get(EVENTS_STREAM, {
      filter_subjects: options.filters ?? [EVENTS_SUBJECTS],
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Math.max(1, options.fromSeq ?? 1),
    });
    const consuming = await consumer.consume();
    const stop = () => void consuming.stop();
    options.signal?.addEventListener('abort', stop, { once: true });
    try {
      if (options.signal?.aborted) return;
      yield* consuming;
    } finally {
      options.signal?.removeEventListener('abort', stop);
      await consuming.close().catch(() => undefined);
    }
  }

  async function* follow(options: ReadOptions = {}): AsyncGenerator<LoggedEvent> {
    for await (const m of messages(options)) {
      const logged = decode(m.seq, m.subject, m.data, options.onInvalid);
      if (logged) yield logged;
    }
  }

  async function* followBatches(options: BatchReadOptions = {}): AsyncGenerator<LoggedEvent[]> {
    const max = Math.max(1, options.maxBatch ?? 500);
    let batch: LoggedEvent[] = [];
    for await (const m of messages(options)) {
      const logged = decode(m.seq, m.subject, m.data, options.onInvalid);
      if (logged) batch.push(logged);
      // info.pending: matching messages the stream held past this one when it was delivered.
      if (batch.length > 0 && (m.info.pending === 0 || batch.length >= max)) {
        yield batch;
        batch = [];
      }
    }
  }

  return {
    js,
    jsm,
    lastSeq,
    replay,
    follow,
    followBatches,
    async append(input) {
      const [result] = await appendBatch([input]);
      return result!;
    },
    appendBatch,
  };
}
