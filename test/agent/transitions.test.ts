import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AgentState } from '../../schema/index.ts';
import { TransitionError } from '../../node-agent/errors.ts';
import { TRANSITIONS, transition, type Outcome } from '../../node-agent/transitions.ts';

/** Follows outcomes from idle and returns the states visited and events emitted. */
function walk(outcomes: Outcome[]) {
  let state: AgentState = 'idle';
  const states: AgentState[] = [state];
  const events: string[] = [];
  for (const o of outcomes) {
    const t = transition(state, o);
    events.push(...t.emit);
    state = t.next;
    states.push(state);
  }
  return { states, events };
}

test('transitions - a healthy upgrade walks every state and emits the contract sequence', () => {
  const { states, events } = walk([
    'upgrade-accepted',
    'fetched',
    'verified',
    'written',
    'armed',
    'booted-trial',
    'checking',
    'healthy',
    'done',
  ]);
  assert.deepEqual(states, [
    'idle',
    'fetching',
    'verifying',
    'writing',
    'armed',
    'rebooting',
    'trial-booted',
    'health-checking',
    'committed',
    'idle',
  ]);
  assert.deepEqual(events, [
    'UpgradeCommandAccepted',
    'ArtifactFetched',
    'SlotWritten',
    'TrialBootArmed',
    'NodeRebooting',
    'NodeBooted',
    'HealthCheckPassed',
    'UpgradeCommitted',
  ]);
});

test('transitions - a failed health check falls back through a reboot and ends idle with NodeFellBack', () => {
  const { states, events } = walk([
    'upgrade-accepted',
    'fetched',
    'verified',
    'written',
    'armed',
    'booted-trial',
    'checking',
    'unhealthy',
    'reboot-needed',
    'back-on-previous',
  ]);
  assert.equal(states.at(-1), 'idle');
  assert.deepEqual(events.slice(6), ['HealthCheckFailed', 'NodeRebooting', 'NodeBooted', 'NodeFellBack']);
});

test('transitions - a rollback reboots without fetching and reports NodeRolledBack', () => {
  const { states, events } = walk(['rollback-accepted', 'activated', 'rolled-back']);
  assert.deepEqual(states, ['idle', 'armed', 'rebooting', 'idle']);
  assert.deepEqual(events, ['UpgradeCommandAccepted', 'NodeRebooting', 'NodeBooted', 'NodeRolledBack']);
});

test('transitions - every failure before the reboot returns to idle and names the outcome', () => {
  for (const state of ['fetching', 'verifying', 'writing'] as const) {
    assert.deepEqual(transition(state, 'invalid'), { next: 'idle', emit: ['UpgradeCommandRejected'] });
    assert.equal(transition(state, 'failed').next, 'idle');
    assert.equal(transition(state, 'cancelled').next, 'idle');
  }
  assert.equal(transition('armed', 'cancelled').next, 'idle');
});

test('transitions - a trial lost to a power loss falls back from every trial state', () => {
  for (const state of ['trial-booted', 'health-checking', 'committed'] as const) {
    assert.deepEqual(transition(state, 'trial-lost'), { next: 'falling-back', emit: ['HealthCheckFailed'] });
  }
});

test('transitions - every state but idle can reach idle, and an outcome the table lacks is a TransitionError', () => {
  for (const state of AgentState.options) {
    const seen = new Set<AgentState>([state]);
    const queue = [state];
    while (queue.length > 0) {
      for (const t of Object.values(TRANSITIONS[queue.shift()!])) {
        if (t && !seen.has(t.next)) {
          seen.add(t.next);
          queue.push(t.next);
        }
      }
    }
    assert.ok(seen.has('idle'), `${state} reaches idle`);
  }
  assert.throws(() => transition('idle', 'healthy'), TransitionError);
  assert.throws(() => transition('committed', 'armed'), /no transition from 'committed' on 'armed'/);
});
