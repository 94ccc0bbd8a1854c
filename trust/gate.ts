import type { Logger } from 'pino';
import type { EventLog, LoggedEvent } from '../eventlog/index.ts';
import { nodeEventsFilters, trustEventsFilter } from '../schema/index.ts';
import type { TrustedKeys } from '../signing/index.ts';
import type { TrustCheckpointStore } from './checkpoint.ts';
import { applyTrust, emptyTrustState, type TrustState, type TrustVerdict } from './reducer.ts';
import { rejectionOf, type RejectionRecorder } from './rejections.ts';

/** The trust verdicts of a component that handles node events out of order (the event bridge). */
export interface TrustGate {
  /** The verdict on the message at `streamSeq`, once the gate has read the log that far. */
  verdict(streamSeq: number): Promise<TrustVerdict>;
  /** The trust state as far as the gate has read. */
  state(): TrustState;
  /** Where this gate started reading (1, or after its checkpoint), and how far it has read. */
  progress(): { fromSeq: number; read: number; applied: number };
  stop(): Promise<void>;
}

/** The gate stopped before it read the log as far as a verdict needed. */
export class TrustGateStoppedError extends Error {
  override name = 'TrustGateStoppedError';
  constructor(seq: number) {
    super(`the trust gate stopped before it read sequence ${seq}; the message stays unacknowledged`);
  }
}

/** How the gate checkpoints its state. */
export interface TrustGateCheckpointing {
  store: TrustCheckpointStore;
  /** Write after this many events applied since the last checkpoint… */
  everyEvents?: number;
  /** …or after this long with any applied (and always at stop). */
  everyMs?: number;
  /** Sequences at or below this are never asked about again (the bridge acknowledged them). */
  answeredUpTo?: () => Promise<number>;
}

const OK: TrustVerdict = { ok: true, changed: false };
/** Most events read and decided before the gate looks at its checkpoint timer. */
const BATCH = 256;
export const CHECKPOINT_EVERY_EVENTS = 10_000;
export const CHECKPOINT_EVERY_MS = 60_000;

type Refusal = Extract<TrustVerdict, { ok: false }>;

/**
 * Reads node and trust events in stream order through the trust reducer, from sequence 1 or from
 * its checkpoint, so its verdicts equal the projector's whatever order the bridge's deliveries
 * (and redeliveries) come in. Refusals are recorded as they are found; verdicts on accepted
 * events are not kept.
 */
export function startTrustGate(init: {
  log: EventLog;
  trustedKeys: TrustedKeys;
  recorder: RejectionRecorder;
  logger: Logger;
  /** Component named in rejection records. */
  by?: string;
  checkpoint?: TrustGateCheckpointing;
}): TrustGate {
  const { log, logger, checkpoint } = init;
  let trust = emptyTrustState();
  let refused = new Map<number, Refusal>();
  let read = 0;
  let fromSeq = 1;
  let applied = 0;
  let sinceCheckpoint = 0;
  let checkpointedAt = Date.now();
  let invalidUpTo = 0;
  const waiters = new Set<{ seq: number; wake: () => void; fail: (err: Error) => void }>();
  const abort = new AbortController();

  function advance(seq: number): void {
    if (seq <= read) return;
    read = seq;
    for (const w of waiters) {
      if (w.seq <= read) {
        waiters.delete(w);
        w.wake();
      }
    }
  }

  async function resume(): Promise<void> {
    if (!checkpoint) return;
    try {
      const loaded = await checkpoint.store.load();
      if ('missing' in loaded) {
        logger.info({ why: loaded.missing }, 'trust gate replays the log from sequence 1');
        return;
      }
      trust = loaded.snapshot.state;
      refused = new Map([...loaded.snapshot.refused].map(([seq, r]) => [seq, { ok: false, ...r }]));
      fromSeq = loaded.snapshot.seq + 1;
      checkpointedAt = Date.now();
      advance(loaded.snapshot.seq);
      logger.info(
        { seq: loaded.snapshot.seq, nodes: trust.nodes.size },
        'trust gate resumes from its checkpoint',
      );
    } catch (err) {
      logger.warn({ err }, 'cannot read the trust checkpoint; replaying the log from sequence 1');
    }
  }

  async function save(): Promise<void> {
    if (!checkpoint || sinceCheckpoint === 0) return;
    try {
      const floor = (await checkpoint.answeredUpTo?.()) ?? 0;
      for (const seq of refused.keys()) if (seq <= floor) refused.delete(seq);
      const kept = new Map([...refused].map(([seq, r]) => [seq, { reason: r.reason, message: r.message }]));
      await checkpoint.store.save({ seq: read, state: trust, refused: kept });
      sinceCheckpoint = 0;
      checkpointedAt = Date.now();
    } catch (err) {
      logger.error({ err, seq: read }, 'cannot write the trust checkpoint; will try again');
    }
  }

  async function apply(batch: readonly LoggedEvent[]): Promise<void> {
    for (const { seq, event, subject } of batch) {
      const verdict = applyTrust(trust, seq, event, init.trustedKeys, subject);
      applied++;
      sinceCheckpoint++;
      if (!verdict.ok) {
        refused.set(seq, verdict);
        await init.recorder
          .record(rejectionOf({ streamSeq: seq, subject, event, ...verdict }, init.by ?? 'event-bridge'))
          .catch((err: unknown) => logger.error({ err, seq }, 'cannot store a rejection record'));
      }
      advance(seq);
    }
    // Invalid entries read before this batch ended lie below its end or right after it.
    advance(invalidUpTo);
  }

  const loop = (async () => {
    await resume();
    while (!abort.signal.aborted) {
      try {
        for await (const batch of log.followBatches({
          fromSeq: read + 1,
          maxBatch: BATCH,
          filters: [...nodeEventsFilters(), trustEventsFilter()],
          signal: abort.signal,
          onInvalid: (e) => (invalidUpTo = Math.max(invalidUpTo, e.seq)),
        })) {
          await apply(batch);
          const due =
            sinceCheckpoint >= (checkpoint?.everyEvents ?? CHECKPOINT_EVERY_EVENTS) ||
            Date.now() - checkpointedAt >= (checkpoint?.everyMs ?? CHECKPOINT_EVERY_MS);
          if (due) await save();
        }
      } catch (err) {
        if (abort.signal.aborted) break;
        logger.error({ err }, 'trust gate stopped reading the log; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    await save();
  })();

  return {
    state: () => trust,
    progress: () => ({ fromSeq, read, applied }),
    verdict(seq) {
      if (seq <= read) return Promise.resolve(refused.get(seq) ?? OK);
      return new Promise((resolve, reject) => {
        waiters.add({ seq, wake: () => resolve(refused.get(seq) ?? OK), fail: reject });
      });
    },
    async stop() {
      abort.abort();
      await loop;
      // Undecided is not accepted: the caller leaves those messages for the next bridge.
      for (const w of waiters) w.fail(new TrustGateStoppedError(w.seq));
      waiters.clear();
    },
  };
}
