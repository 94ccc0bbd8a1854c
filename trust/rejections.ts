import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import {
  REJECTIONS_BUCKET,
  RejectionRecord,
  isValidId,
  type DomainEvent,
  type RejectionReason,
} from '../schema/index.ts';

/** Opens (creating if needed) the bucket of refused node events. */
export async function openRejectionBucket(nc: NatsConnection): Promise<KV> {
  return new Kvm(nc).create(REJECTIONS_BUCKET, {
    history: 1,
    description: 'slotflow node events refused by signature or enrolment (slotflow events --rejected)',
  });
}

function keyOf(nodeId: string, streamSeq: number): string {
  return `${isValidId(nodeId) ? nodeId : '_'}.${String(streamSeq).padStart(12, '0')}`;
}

/** The record of one refused event. */
export function rejectionOf(
  input: { streamSeq: number; subject: string; event: DomainEvent; reason: RejectionReason; message: string },
  by: string,
  now = new Date(),
): RejectionRecord {
  const { event } = input;
  return {
    streamSeq: input.streamSeq,
    subject: input.subject,
    eventId: event.id,
    nodeId: 'nodeId' in event && typeof event.nodeId === 'string' ? event.nodeId : '_',
    type: event.type,
    reason: input.reason,
    message: input.message,
    eventAt: event.at,
    rejectedAt: now.toISOString(),
    by,
  };
}

/**
 * Counts, logs and stores refusals; the first component to refuse a message records it. A
 * duplicate relay (a peer's copy of an event already accepted) is counted apart and not stored:
 * every extra relay of an event makes one, it changes nothing, and listing them would bury the
 * refusals an operator has to look at.
 */
export interface RejectionRecorder {
  record(rejection: RejectionRecord): Promise<void>;
  /** Refusals this process saw (duplicate relays not included). */
  count(): number;
  /** Duplicate relays this process skipped. */
  duplicates(): number;
}

/** A recorder over the rejection bucket (`kv` undefined: count and log only). */
export function createRejectionRecorder(kv: KV | undefined, logger: Logger): RejectionRecorder {
  let count = 0;
  let duplicates = 0;
  return {
    count: () => count,
    duplicates: () => duplicates,
    async record(r) {
      if (r.reason === 'duplicate-relay') {
        duplicates++;
        logger.debug({ streamSeq: r.streamSeq, nodeId: r.nodeId, eventId: r.eventId }, r.message);
        return;
      }
      count++;
      logger.warn(
        { streamSeq: r.streamSeq, nodeId: r.nodeId, type: r.type, reason: r.reason, eventId: r.eventId },
        `refused a node event: ${r.message}`,
      );
      if (!kv) return;
      try {
        await kv.create(keyOf(r.nodeId, r.streamSeq), JSON.stringify(r));
      } catch (err) {
        // Another component (or a rebuild) recorded this message first: that record stands.
        if (!/wrong last sequence|key exists/i.test((err as Error).message)) throw err;
      }
    },
  };
}

/** Every stored refusal (of one node when given), oldest first in the log. */
export async function listRejections(kv: KV, nodeId?: string): Promise<RejectionRecord[]> {
  const keys: string[] = [];
  for await (const key of await kv.keys(nodeId ? `${nodeId}.>` : '>')) keys.push(key);
  const out: RejectionRecord[] = [];
  for (const key of keys) {
    const entry = await kv.get(key);
    if (!entry || entry.operation !== 'PUT') continue;
    const parsed = RejectionRecord.safeParse(entry.json());
    if (parsed.success) out.push(parsed.data);
  }
  return out.sort((a, b) => a.streamSeq - b.streamSeq);
}
