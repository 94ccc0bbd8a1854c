// What must hold after every crash trial: a bootable slot, a consistent journal, one outcome
// per command, and a sensible event sequence.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeEvent } from '../../schema/index.ts';
import type { JournalData } from '../../node-agent/journal-data.ts';
import type { TestAgent } from './harness.ts';
import { REQUIRED_CHAIN } from '../../lab/power-cut.ts';

/** The event types that end a command. */
export const TERMINAL = new Set([
  'UpgradeCommitted',
  'NodeFellBack',
  'NodeRolledBack',
  'UpgradeCommandRejected',
]);

/**
 * Polls the journal file (raw JSON: this runs hundreds of times a second) until `predicate`
 * holds; undefined when `give` says to stop or time runs out.
 */
export async function watchJournal(
  agent: TestAgent,
  predicate: (j: JournalData) => boolean,
  {
    timeoutMs = 30_000,
    pollMs = 8,
    give = () => false,
  }: { timeoutMs?: number; pollMs?: number; give?: () => boolean } = {},
): Promise<JournalData | undefined> {
  const file = join(agent.dataDir, 'journal.json');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !give()) {
    const j = await readFile(file, 'utf8').then(
      (t) => JSON.parse(t) as JournalData,
      () => undefined,
    );
    if (j && predicate(j)) return j;
    await sleep(pollMs);
  }
  return undefined;
}

/** The node boots a committed slot whose image matches its metadata; returns what it runs. */
export async function assertBootable(agent: TestAgent): Promise<{ slot: string; version: string }> {
  const boot = JSON.parse(await readFile(join(agent.dataDir, 'slots', 'boot-state.json'), 'utf8'));
  assert.equal(boot.booted, boot.active, `${agent.nodeId} runs its committed slot`);
  assert.equal(boot.trial, false, `${agent.nodeId} is not left on a trial boot`);
  assert.equal(boot.next, null, `${agent.nodeId} has no trial armed`);
  const meta = JSON.parse(await readFile(join(agent.dataDir, 'slots', `${boot.active}.json`), 'utf8'));
  assert.ok(typeof meta.version === 'string', `slot ${boot.active} of ${agent.nodeId} holds an image`);
  if (meta.digest) {
    const image = await readFile(join(agent.dataDir, 'slots', `${boot.active}.img`));
    const digest = `sha256:${createHash('sha256').update(image).digest('hex')}`;
    assert.equal(
      digest,
      meta.digest,
      `slot ${boot.active} of ${agent.nodeId} holds the image its metadata names`,
    );
  }
  return { slot: boot.active, version: meta.version };
}

/** The journal is idle, its outbox is drained, and it remembers how the command ended. */
export async function assertSettled(agent: TestAgent, commandId: string, outcome: NodeEvent): Promise<void> {
  const settled = await watchJournal(agent, (d) => d.state === 'idle' && d.outbox.length === 0, {
    timeoutMs: 20_000,
    pollMs: 20,
  });
  assert.ok(settled, `${agent.nodeId}: the journal settles (idle, outbox empty)`);
  // The full schema check, once: the journal a crash left behind is a valid, current journal.
  const j = await agent.journal();
  assert.equal(j.op, null);
  const handled = j.handled.find((h) => h.commandId === commandId);
  assert.equal(handled?.final.id, outcome.id, 'the journal remembers the outcome that was published');
}

/** The events of an upgrade that commits, in the order the node emits them. */
export const COMMITTED_UPGRADE: readonly string[] = REQUIRED_CHAIN.committed;

const ONCE = new Set([
  'UpgradeCommandAccepted',
  'ArtifactFetched',
  'SlotWritten',
  'TrialBootArmed',
  'HealthCheckPassed',
  'HealthCheckFailed',
]);

/**
 * One outcome, no step twice (reboots at most twice: trial and fallback), Accepted first. Steps
 * are counted by type: a step taken again gets a new event id, while the same id published again
 * (an outbox re-sent after a kill) is one step, stored once.
 */
export function assertCommandEvents(events: readonly NodeEvent[], kind: 'upgrade' | 'rollback'): NodeEvent {
  const terminal = events.filter((e) => TERMINAL.has(e.type));
  assert.equal(terminal.length, 1, `exactly one outcome, got ${events.map((e) => e.type).join(', ')}`);
  assert.equal(events[0]?.type, 'UpgradeCommandAccepted');
  assert.equal(events.at(-1), terminal[0], 'the outcome is the last event');
  const counts = new Map<string, number>();
  for (const e of events) counts.set(e.type, (counts.get(e.type) ?? 0) + 1);
  for (const [type, n] of counts) assert.ok(n <= (ONCE.has(type) ? 1 : 2), `${type} stored ${n} times`);
  const outcome = terminal[0]!;
  if (kind === 'upgrade') {
    assert.ok(
      ['UpgradeCommitted', 'NodeFellBack'].includes(outcome.type),
      `upgrade ends committed or fell back, got ${outcome.type}`,
    );
    if (outcome.type === 'UpgradeCommitted') {
      assert.deepEqual(
        events.map((e) => e.type),
        COMMITTED_UPGRADE,
      );
    }
  } else {
    assert.ok(
      ['NodeRolledBack', 'NodeFellBack'].includes(outcome.type),
      `rollback ends rolled back, got ${outcome.type}`,
    );
  }
  return outcome;
}
