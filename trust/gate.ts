import type { Logger } from 'pino';
import type { EventLog } from '../eventlog/index.ts';
import { nodeEventsFilters, trustEventsFilter } from '../schema/index.ts';
import type { TrustedKeys } from '../signing/index.ts';
import { applyTrust, emptyTrustState, type TrustState, type TrustVerdict } from './reducer.ts';
import { rejectionOf, type RejectionRecorder } from './rejections.ts';

/** The trust verdicts of a component that handles node events out of order (the event bridge). */
export interface TrustGate {
  /** The verdict on the message at `streamSeq`, once the gate has read the log that far. */
  verdict(streamSeq: number): Promise<TrustVerdict>;
  /** The trust state as far as the gate has read. */
  state(): TrustState;
  stop(): Promise<void>;
}

/** The gate stopped before it read the log as far as a verdict needed. */
export class TrustGateStoppedError extends Error {
  override name = 'TrustGateStoppedError';
  constructor(seq: number) {
    super(`the trust gate stopped before it read sequence ${seq}; the message stays unacknowledged`);
  }
}

const OK: TrustVerdict = { ok: true, changed: false };

/**
 * Reads node and trust events in stream order from sequence 1 through the trust reducer, so its
 * verdicts equal the projector's whatever order the bridge's deliveries (and redeliveries) come
 * in. Refusals are recorded as they are found; verdicts on accepted events are not kept.
 */
export function startTrustGate(init: {
  log: EventLog;
  trustedKeys: TrustedKeys;
  recorder: RejectionRecorder;
  logger: Logger;
  /** Component named in rejection records. */
  by?: string;
}): TrustGate {
  const { log, logger } = init;
  const trust = emptyTrustState();
  const refused = new Map<number, TrustVerdict>();
  let read = 0;
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

  const loop = (async () => {
    while (!abort.signal.aborted) {
      try {
        for await (const { seq, event, subject } of log.follow({
          fromSeq: read + 1,
          filters: [...nodeEventsFilters(), trustEventsFilter()],
          signal: abort.signal,
          onInvalid: (e) => advance(e.seq),
        })) {
          const verdict = applyTrust(trust, seq, event, init.trustedKeys, subject);
          if (!verdict.ok) {
            refused.set(seq, verdict);
            await init.recorder
              .record(rejectionOf({ streamSeq: seq, subject, event, ...verdict }, init.by ?? 'event-bridge'))
              .catch((err: unknown) => logger.error({ err, seq }, 'cannot store a rejection record'));
          }
          advance(seq);
        }
      } catch (err) {
        if (abort.signal.aborted) return;
        logger.error({ err }, 'trust gate stopped reading the log; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  })();

  return {
    state: () => trust,
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
