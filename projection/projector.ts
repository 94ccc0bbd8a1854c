import type { KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import type { EventLog } from '../eventlog/index.ts';
import { rejectionOf, type RejectionRecorder } from '../trust/rejections.ts';
import { eventSubject } from '../schema/index.ts';
import type { TrustedKeys } from '../signing/index.ts';
import { applyEvent, type ProjectionTrust, type Refusal } from './reducer.ts';
import { loadProjection, replaceProjection, saveChanges } from './store.ts';
import { emptyProjection, type Projection } from './views.ts';

/** Keeps the fleet and rollout projections materialised in NATS KV as events arrive. */
export interface Projector {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The in-memory projection (read-only for callers). */
  current(): Projection;
  /** Resolves once every event up to `seq` is applied and stored. */
  waitForSeq(seq: number, timeoutMs?: number): Promise<void>;
  /** Discards the stored projection and rebuilds it by replaying the log from sequence 1. */
  rebuild(): Promise<Projection>;
}

/** Applies every event after the projection's lastSeq, up to the log's current end. */
export async function catchUp(
  projection: Projection,
  log: EventLog,
  trust: ProjectionTrust,
  onInvalid?: (problem: string) => void,
): Promise<Projection> {
  for await (const { seq, event, subject } of log.replay({
    fromSeq: projection.lastSeq + 1,
    onInvalid: (e) => onInvalid?.(`seq ${e.seq} on ${e.subject}: ${e.problem}`),
  })) {
    applyEvent(projection, seq, event, trust, subject);
  }
  return projection;
}

/** Most events applied in memory before the changed views are written. */
export const PROJECTION_BATCH = 500;

/** Creates a projector over the given log and KV bucket. */
export function createProjector({
  log,
  kv,
  logger,
  trustedKeys,
  recorder,
}: {
  log: EventLog;
  kv: KV;
  logger: Logger;
  /** Control-plane keys that sign enrolments. */
  trustedKeys: TrustedKeys;
  /** Where refused node events are counted, logged and recorded (default: logged only). */
  recorder?: RejectionRecorder;
}): Projector {
  const refusals: Promise<void>[] = [];
  const onRefused = (r: Refusal) => {
    if (recorder) {
      refusals.push(
        recorder
          .record(
            rejectionOf({ ...r, streamSeq: r.seq, subject: r.subject ?? eventSubject(r.event) }, 'projector'),
          )
          .catch((err: unknown) => logger.error({ err, seq: r.seq }, 'cannot store a rejection record')),
      );
    } else if (r.reason === 'duplicate-relay') {
      logger.debug({ seq: r.seq }, `skipped a node event: ${r.message}`);
    } else {
      logger.warn({ seq: r.seq, reason: r.reason }, `refused a node event: ${r.message}`);
    }
  };
  const trust: ProjectionTrust = { trustedKeys, onRefused };
  let projection = emptyProjection();
  /** The newest sequence whose effects are in the bucket (what waitForSeq waits for). */
  let savedSeq = 0;
  /** Keys changed in memory and not yet written; kept across a failed write so a retry writes them. */
  let dirty = { nodes: new Set<string>(), rollouts: new Set<string>(), trust: new Set<string>() };
  let abort: AbortController | undefined;
  let loop: Promise<void> | undefined;
  const waiters = new Set<{ seq: number; resolve: () => void }>();

  const onInvalid = (e: { seq: number; subject: string; problem: string }) =>
    logger.warn({ seq: e.seq, subject: e.subject, problem: e.problem }, 'skipping an invalid event');

  function notify(): void {
    for (const w of waiters) {
      if (savedSeq >= w.seq) {
        waiters.delete(w);
        w.resolve();
      }
    }
  }

  /** Writes every changed view once, then the sequence they reflect. */
  async function flush(): Promise<void> {
    // Refusals are on record before the sequence that passed them is.
    await Promise.all(refusals.splice(0));
    await saveChanges(kv, projection, dirty);
    dirty = { nodes: new Set(), rollouts: new Set(), trust: new Set() };
    savedSeq = projection.lastSeq;
    notify();
  }

  async function run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        if (savedSeq < projection.lastSeq) await flush();
        // A batch is what the consumer holds up to the log's end: apply it all in memory, then
        // write each view it changed once, however many of its events touched that view.
        for await (const batch of log.followBatches({
          fromSeq: projection.lastSeq + 1,
          maxBatch: PROJECTION_BATCH,
          signal,
          onInvalid,
        })) {
          for (const { seq, event, subject } of batch) {
            const changes = applyEvent(projection, seq, event, trust, subject);
            for (const id of changes.nodes) dirty.nodes.add(id);
            for (const id of changes.rollouts) dirty.rollouts.add(id);
            for (const id of changes.trust) dirty.trust.add(id);
          }
          await flush();
        }
      } catch (err) {
        if (signal.aborted) return;
        logger.error({ err }, 'projection follow failed; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  function follow(): void {
    abort = new AbortController();
    loop = run(abort.signal);
  }

  async function halt(): Promise<void> {
    abort?.abort();
    await loop;
    abort = undefined;
    loop = undefined;
  }

  return {
    async start() {
      projection = await loadProjection(kv);
      savedSeq = projection.lastSeq;
      logger.info({ lastSeq: projection.lastSeq }, 'projection loaded');
      follow();
    },
    stop: halt,
    current: () => projection,
    waitForSeq(seq, timeoutMs = 10_000) {
      if (savedSeq >= seq) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const waiter = { seq, resolve: () => (clearTimeout(timer), resolve()) };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(
            new Error(
              `projection did not store sequence ${seq} within ${timeoutMs} ms (stored up to ${savedSeq}, applied up to ${projection.lastSeq})`,
            ),
          );
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    async rebuild() {
      const wasRunning = loop !== undefined;
      await halt();
      const fresh = await catchUp(emptyProjection(), log, trust, (p) => logger.warn(p));
      await Promise.all(refusals.splice(0));
      await replaceProjection(kv, fresh);
      projection = fresh;
      savedSeq = fresh.lastSeq;
      dirty = { nodes: new Set(), rollouts: new Set(), trust: new Set() };
      logger.info(
        { lastSeq: fresh.lastSeq, nodes: fresh.nodes.size, rollouts: fresh.rollouts.size },
        'projection rebuilt',
      );
      notify();
      if (wasRunning) follow();
      return fresh;
    },
  };
}
