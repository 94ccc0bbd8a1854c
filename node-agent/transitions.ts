import type { AgentState, NodeEvent } from '../schema/index.ts';
import { TransitionError } from './errors.ts';

// The agent's state machine as data (mender style): state × outcome → next state and the
// events that record the step. Steps (steps.ts) do the side effects and report an outcome;
// the executor commits the transition to the journal before the next step runs.

/** What a step (or an incoming command) can report. */
export const Outcome = {
  upgradeAccepted: 'upgrade-accepted',
  rollbackAccepted: 'rollback-accepted',
  fetched: 'fetched',
  verified: 'verified',
  written: 'written',
  armed: 'armed',
  activated: 'activated',
  /** A power loss after arming booted the trial before the agent asked for the reboot. */
  bootedEarly: 'booted-early',
  /** A power loss after switching slots for a rollback booted the target already. */
  rolledBackEarly: 'rolled-back-early',
  bootedTrial: 'booted-trial',
  /** The firmware booted the old slot instead of the trial. */
  bootedPrevious: 'booted-previous',
  rolledBack: 'rolled-back',
  rollbackMissed: 'rollback-missed',
  checking: 'checking',
  healthy: 'healthy',
  unhealthy: 'unhealthy',
  /** The trial boot ended (power loss, crash of the system) before it was committed. */
  trialLost: 'trial-lost',
  done: 'done',
  rebootFailed: 'reboot-failed',
  rebootNeeded: 'reboot-needed',
  /** Back on the previous slot after a fallback reboot. */
  backOnPrevious: 'back-on-previous',
  /** Still on the previous slot (the trial never ran or the reboot never happened). */
  fellBack: 'fell-back',
  invalid: 'invalid',
  failed: 'failed',
  cancelled: 'cancelled',
} as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];

type EventType = NodeEvent['type'];

/** Where an outcome leads, and which events record it (in order). */
export interface Transition {
  readonly next: AgentState;
  readonly emit: readonly EventType[];
}

const t = (next: AgentState, ...emit: EventType[]): Transition => ({ next, emit });

// Failures before the reboot leave the node untouched on its slot: back to idle.
const beforeReboot = {
  [Outcome.invalid]: t('idle', 'UpgradeCommandRejected'),
  [Outcome.failed]: t('idle', 'NodeFellBack'),
  [Outcome.cancelled]: t('idle', 'NodeFellBack'),
};

/** The whole table. A missing entry is a bug (TransitionError), never an input problem. */
export const TRANSITIONS: Readonly<Record<AgentState, Partial<Record<Outcome, Transition>>>> = {
  idle: {
    [Outcome.upgradeAccepted]: t('fetching', 'UpgradeCommandAccepted'),
    [Outcome.rollbackAccepted]: t('armed', 'UpgradeCommandAccepted'),
  },
  fetching: {
    [Outcome.fetched]: t('verifying'),
    ...beforeReboot,
  },
  verifying: {
    [Outcome.verified]: t('writing', 'ArtifactFetched'),
    ...beforeReboot,
  },
  writing: {
    [Outcome.written]: t('armed', 'SlotWritten'),
    ...beforeReboot,
  },
  armed: {
    [Outcome.armed]: t('rebooting', 'TrialBootArmed', 'NodeRebooting'),
    [Outcome.activated]: t('rebooting', 'NodeRebooting'),
    [Outcome.bootedEarly]: t('trial-booted', 'TrialBootArmed', 'NodeRebooting', 'NodeBooted'),
    [Outcome.rolledBackEarly]: t('idle', 'NodeRebooting', 'NodeBooted', 'NodeRolledBack'),
    [Outcome.failed]: beforeReboot[Outcome.failed],
    [Outcome.cancelled]: beforeReboot[Outcome.cancelled],
  },
  rebooting: {
    [Outcome.bootedTrial]: t('trial-booted', 'NodeBooted'),
    [Outcome.bootedPrevious]: t('falling-back', 'NodeBooted', 'HealthCheckFailed'),
    [Outcome.rolledBack]: t('idle', 'NodeBooted', 'NodeRolledBack'),
    [Outcome.rollbackMissed]: t('idle', 'NodeBooted', 'NodeFellBack'),
    [Outcome.rebootFailed]: t('falling-back'),
  },
  'trial-booted': {
    [Outcome.checking]: t('health-checking'),
    [Outcome.trialLost]: t('falling-back', 'HealthCheckFailed'),
  },
  'health-checking': {
    [Outcome.healthy]: t('committed', 'HealthCheckPassed'),
    [Outcome.unhealthy]: t('falling-back', 'HealthCheckFailed'),
    [Outcome.trialLost]: t('falling-back', 'HealthCheckFailed'),
  },
  committed: {
    [Outcome.done]: t('idle', 'UpgradeCommitted'),
    [Outcome.trialLost]: t('falling-back', 'HealthCheckFailed'),
  },
  'falling-back': {
    [Outcome.rebootNeeded]: t('falling-back', 'NodeRebooting'),
    [Outcome.backOnPrevious]: t('idle', 'NodeBooted', 'NodeFellBack'),
    [Outcome.fellBack]: t('idle', 'NodeFellBack'),
  },
};

/** The transition for `outcome` in `state`; throws TransitionError when the table has none. */
export function transition(state: AgentState, outcome: Outcome): Transition {
  const found = TRANSITIONS[state][outcome];
  if (!found) {
    const allowed = Object.keys(TRANSITIONS[state]).join(', ') || 'none';
    throw new TransitionError(`no transition from '${state}' on '${outcome}' (allowed: ${allowed})`);
  }
  return found;
}

/** States in which a crash leaves the image not yet booted: a Cancel may still stop them. */
export const CANCELLABLE: ReadonlySet<AgentState> = new Set(['fetching', 'verifying', 'writing', 'armed']);
