import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
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

/** Append-only access to SLOTFLOW_EVENTS. */
export interface EventLog {
  /** Validates and appends one event; a re-sent event id is de-duplicated by the stream. */
  append(event: DomainEventInput): Promise<AppendResult>;
  /** Reads every stored event from `fromSeq` up to the end as it was when the call started. */
  replay(options?: ReadOptions): AsyncGenerator<LoggedEvent>;
  /** Reads from `fromSeq` and keeps delivering new events until the signal aborts. */
  follow(options?: ReadOptions): AsyncGenerator<LoggedEvent>;
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
  return { seq, event: parsed.data };
}

/** Opens the event log, creating the streams if needed. */
export async function openEventLog(
  nc: NatsConnection,
  limits: StreamLimits = DEFAULT_STREAM_LIMITS,
): Promise<EventLog> {
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, limits);
  const js = jetstream(nc);

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

  async function* follow(options: ReadOptions = {}): AsyncGenerator<LoggedEvent> {
    const consumer = await js.consumers.get(EVENTS_STREAM, {
      filter_subjects: options.filters ?? [EVENTS_SUBJECTS],
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Math.max(1, options.fromSeq ?? 1),
    });
    const messages = await consumer.consume();
    const stop = () => void messages.stop();
    options.signal?.addEventListener('abort', stop, { once: true });
    try {
      if (options.signal?.aborted) return;
      for await (const m of messages) {
        const logged = decode(m.seq, m.subject, m.data, options.onInvalid);
        if (logged) yield logged;
      }
    } finally {
      options.signal?.removeEventListener('abort', stop);
      await messages.close().catch(() => undefined);
    }
  }

  return {
    js,
    jsm,
    lastSeq,
    replay,
    follow,
    async append(input) {
      const event = parseWith(DomainEvent, input, `${(input as { type?: string }).type ?? 'event'} event`);
      const ack = await js.publish(eventSubject(event), JSON.stringify(event), {
        msgID: event.id,
        expect: { streamName: EVENTS_STREAM },
      });
      return { seq: ack.seq, duplicate: ack.duplicate };
    },
  };
}
