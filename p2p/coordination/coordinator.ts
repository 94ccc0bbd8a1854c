import type { Logger } from 'pino';
import type { RolloutPlan } from '../../schema/index.ts';
import { LeaseForfeitedError, NotInPlanError, WaveGateFailedError } from '../errors.ts';
import type { LeaseGossip } from './lease-gossip.ts';
import { decide, timetable, type Decision, type Turn } from './schedule.ts';

/** This node's reboot turn, held until released. */
export interface RebootLease {
  readonly rolloutId: string;
  readonly turn: Turn;
  readonly startedAt: number;
  /** The node must be back and healthy (or give up) by this time; afterwards it counts as failed. */
  readonly deadline: number;
  /** Ends the turn and tells peers how it went (`succeeded` feeds the next wave's gate). */
  release(outcome: 'succeeded' | 'failed'): Promise<void>;
}

/** Reboot turns of one signed plan, coordinated with peers over gossip. */
export interface RebootCoordinator {
  readonly plan: RolloutPlan;
  /** This node's place and fixed timetable in the plan. */
  readonly turn: Turn;
  /**
   * Waits for this node's turn: resolves with the lease, or rejects with LeaseForfeitedError
   * (the window closed), WaveGateFailedError (earlier waves failed too often) or the signal's
   * reason. Publishes the `started` report before resolving.
   */
  acquire(options?: { signal?: AbortSignal; onWait?: (reason: string) => void }): Promise<RebootLease>;
  /**
   * Reports this node's turn as done without a lease object: after the reboot the agent is a
   * new process, and it finishes the turn it took before rebooting. Also used to pass a turn
   * (`skipped`) when the node will not reboot (already on the version, command rejected).
   */
  finish(outcome: 'succeeded' | 'failed' | 'skipped'): Promise<void>;
  /** What this node may do now (for status output). */
  decision(): Decision;
}

/** Builds a coordinator for a verified plan; `nodeId` must be in the plan. */
export function createRebootCoordinator(init: {
  plan: RolloutPlan;
  nodeId: string;
  lease: LeaseGossip;
  now?: () => number;
  /** How often to re-check the schedule while waiting (default 250 ms; reports also wake it). */
  pollMs?: number;
  log: Logger;
}): RebootCoordinator {
  const { plan, nodeId, lease, log } = init;
  const now = init.now ?? Date.now;
  const turns = timetable(plan);
  const turn = turns.get(nodeId);
  if (!turn)
    throw new NotInPlanError(`node ${nodeId} is not in plan ${plan.rolloutId}; it must not reboot for it`);
  const decision = (): Decision => decide(plan, turns, lease.reports(plan.rolloutId), nodeId, now());

  async function finish(outcome: 'succeeded' | 'failed' | 'skipped'): Promise<void> {
    await lease.publish({
      v: 1,
      type: 'done',
      rolloutId: plan.rolloutId,
      nodeId,
      at: new Date(now()).toISOString(),
      outcome,
    });
  }

  /** The wait under way, so its end can be logged with whom it waited on and how that ended. */
  let waiting: { since: number; reason: string; on: string | undefined } | undefined;

  /** How the turn of `on` ended in this view: its own report, or its deadline passing. */
  function endOf(on: string | undefined): string | undefined {
    if (on === undefined) return undefined;
    const seen = lease.reports(plan.rolloutId).get(on);
    if (seen?.done) return `${on} reported ${seen.done.outcome}`;
    return seen?.started
      ? `${on} held its turn past its deadline (reclaimed)`
      : `${on}'s turn passed its fixed end unheard`;
  }

  function waitEnded(outcome: string): void {
    if (!waiting) return;
    log.info(
      {
        rolloutId: plan.rolloutId,
        waitedFor: waiting.on,
        waitedMs: now() - waiting.since,
        ended: endOf(waiting.on),
        outcome,
      },
      'reboot turn wait ended',
    );
    waiting = undefined;
  }

  async function acquire(
    options: { signal?: AbortSignal; onWait?: (reason: string) => void } = {},
  ): Promise<RebootLease> {
    let lastReason = '';
    for (;;) {
      if (options.signal?.aborted) {
        waitEnded('aborted');
        options.signal.throwIfAborted();
      }
      const d = decision();
      if (d.type !== 'wait') waitEnded(d.type);
      switch (d.type) {
        case 'go': {
          const startedAt = now();
          await lease.publish({
            v: 1,
            type: 'started',
            rolloutId: plan.rolloutId,
            nodeId,
            at: new Date(startedAt).toISOString(),
          });
          log.info(
            { rolloutId: plan.rolloutId, wave: turn!.wave, deadline: new Date(d.deadline).toISOString() },
            'reboot turn taken',
          );
          let released = false;
          return {
            rolloutId: plan.rolloutId,
            turn: d.turn,
            startedAt,
            deadline: d.deadline,
            async release(outcome) {
              if (released) return;
              released = true;
              await finish(outcome);
            },
          };
        }
        case 'forfeit':
          await finish('skipped');
          throw new LeaseForfeitedError(
            `node ${nodeId} forfeits its reboot turn: ${d.reason}; it must not reboot for this plan`,
          );
        case 'gate-failed':
          throw new WaveGateFailedError(
            `wave ${d.wave} of rollout ${plan.rolloutId} does not start: ${d.failed} of ${d.executed} nodes of earlier waves failed, more than the threshold allows`,
            { wave: d.wave, failed: d.failed, executed: d.executed },
          );
        case 'done':
          throw new LeaseForfeitedError(
            `node ${nodeId} already finished its turn in rollout ${plan.rolloutId}`,
          );
        case 'wait':
          if (d.reason !== lastReason) {
            if (waiting) waitEnded('still waiting');
            waiting = { since: now(), reason: d.reason, on: d.waitingFor };
            log.info(
              { rolloutId: plan.rolloutId, wave: turn!.wave, waitingFor: d.waitingFor, reason: d.reason },
              'reboot turn wait began',
            );
            lastReason = d.reason;
            options.onWait?.(d.reason);
          }
          await new Promise<void>((resolve) => {
            const timer = setTimeout(done, init.pollMs ?? 250);
            const off = lease.onReport(done);
            const abort = () => done();
            options.signal?.addEventListener('abort', abort, { once: true });
            function done(): void {
              clearTimeout(timer);
              off();
              options.signal?.removeEventListener('abort', abort);
              resolve();
            }
          });
      }
    }
  }

  return { plan, turn, acquire, finish, decision };
}
