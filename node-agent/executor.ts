import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { AgentState, NodeEvent } from '../schema/index.ts';
import { describeError } from './errors.ts';
import { eventsFor, type StepDetail } from './events.ts';
import type { Journal } from './journal.ts';
import type { Operation } from './journal-data.ts';
import type { SlotDriver, SlotStatus } from './slot-drivers/driver.ts';
import { STEPS, discardStaging, type StepDeps, type StepResult } from './steps.ts';
import { Outcome, transition } from './transitions.ts';

/** Runs the operation in the journal step by step until the node is idle again. */
export interface Executor {
  start(): void;
  stop(): Promise<void>;
  /** Look at the journal again (a command was accepted). */
  wake(): void;
  /** Abort the running step (a Cancel arrived; the step reports `cancelled`). */
  cancel(): void;
}

export interface ExecutorDeps extends Omit<StepDeps, 'signal' | 'cancelRequested'> {
  readonly nodeId: string;
  readonly journal: Journal;
  readonly driver: SlotDriver;
  readonly log: Logger;
  /** Fault injection for crash tests: linger this long after each committed transition. */
  readonly stepDelayMs?: number;
  /** An operation ended (its final event is in the outbox). */
  readonly onFinished?: (op: Operation, final: NodeEvent | undefined) => void;
}

// After this many failed attempts of a step before the reboot, the upgrade is given up
// (the node is untouched); on a trial boot it counts as a failed health check.
const ATTEMPTS = 3;
const EMITS_STATUS: ReadonlySet<string> = new Set(['NodeBooted', 'NodeFellBack', 'NodeRolledBack']);

/** What a step that keeps throwing amounts to, or undefined to keep retrying (after the reboot). */
function givenUp(state: AgentState, attempts: number, err: unknown): StepResult | undefined {
  if (attempts < ATTEMPTS) return undefined;
  const reason = `${state} failed ${attempts} times: ${describeError(err)}`;
  if (['fetching', 'verifying', 'writing', 'armed'].includes(state))
    return { outcome: Outcome.failed, detail: { reason } };
  if (state === 'trial-booted' || state === 'health-checking') {
    return { outcome: Outcome.unhealthy, detail: { check: 'agent', reason } };
  }
  return undefined;
}

/** How an operation ended, for metrics and `last`. */
function resultOf(final: NodeEvent | undefined): string {
  switch (final?.type) {
    case 'UpgradeCommitted':
      return 'committed';
    case 'NodeFellBack':
      return 'fell-back';
    case 'NodeRolledBack':
      return 'rolled-back';
    case 'UpgradeCommandRejected':
      return 'rejected';
    default:
      return 'unknown';
  }
}

/**
 * The loop that drives the state machine: run the current state's step, look the outcome up in
 * the transition table, commit the next state and its events to the journal (fsynced), repeat.
 * A crash at any point resumes at the last committed state; steps are idempotent.
 */
export function createExecutor(deps: ExecutorDeps): Executor {
  const { journal, log } = deps;
  let stopped = false;
  let loop: Promise<void> | undefined;
  let controller = new AbortController();
  let wakeUp: (() => void) | undefined;

  const idle = () =>
    new Promise<void>((resolve) => {
      wakeUp = resolve;
    });

  async function commit(
    state: AgentState,
    result: StepResult,
    status: SlotStatus | undefined,
  ): Promise<void> {
    const tr = transition(state, result.outcome);
    let finished: Operation | undefined;
    let finalEvent: NodeEvent | undefined;
    await journal.commit((d) => {
      const op: Operation = { ...d.op!, ...result.patch };
      const detail: StepDetail = result.detail ?? {};
      if (tr.next === 'falling-back' && op.failure === undefined)
        op.failure = detail.reason ?? result.outcome;
      const events = eventsFor(tr.emit, {
        nodeId: deps.nodeId,
        op,
        status,
        initialVersion: deps.config.initialVersion,
        detail,
      });
      d.outbox.push(...events);
      d.state = tr.next;
      d.stateSince = new Date().toISOString();
      if (tr.next === 'idle') {
        const final = events.at(-1);
        finalEvent = final;
        if (final) d.handled.push({ commandId: op.command.commandId, final });
        d.last = { result: resultOf(final), commandId: op.command.commandId, at: d.stateSince };
        d.op = null;
        finished = op;
      } else {
        d.op = op;
      }
    });
    log.info(
      {
        from: state,
        outcome: result.outcome,
        to: tr.next,
        ...(result.detail?.reason ? { reason: result.detail.reason } : {}),
      },
      'state changed',
    );
    if (finished) {
      await discardStaging(deps.paths, finished).catch(() => undefined);
      deps.onFinished?.(finished, finalEvent);
    }
  }

  async function run(): Promise<void> {
    let attempts = 0;
    while (!stopped) {
      const { state, op } = journal.data;
      if (state === 'idle' || !op) {
        await idle();
        continue;
      }
      controller = new AbortController();
      let result: StepResult | undefined;
      try {
        result = await STEPS[state](op, {
          ...deps,
          signal: controller.signal,
          cancelRequested: () => journal.data.op?.cancelRequested === true,
        });
      } catch (err) {
        if (stopped) return;
        attempts++;
        log.error({ state, attempt: attempts, err: describeError(err) }, 'step failed');
        result = givenUp(state, attempts, err);
        if (!result) {
          await sleep(Math.min(500 * 2 ** attempts, 30_000));
          continue;
        }
      }
      attempts = 0;
      try {
        const emits = transition(state, result.outcome).emit;
        const status = emits.some((t) => EMITS_STATUS.has(t)) ? await deps.driver.status() : undefined;
        await commit(state, result, status);
      } catch (err) {
        // The journal could not be written: repeat the (idempotent) step once the disk allows.
        log.error({ state, err: describeError(err) }, 'cannot record the step; retrying');
        await sleep(1000);
        continue;
      }
      if (deps.stepDelayMs) await sleep(deps.stepDelayMs);
    }
  }

  return {
    start() {
      loop ??= run().catch((err) => log.fatal({ err: describeError(err) }, 'executor stopped'));
    },
    async stop() {
      stopped = true;
      controller.abort();
      wakeUp?.();
      await loop;
    },
    wake() {
      const w = wakeUp;
      wakeUp = undefined;
      w?.();
    },
    cancel() {
      controller.abort();
      this.wake();
    },
  };
}
