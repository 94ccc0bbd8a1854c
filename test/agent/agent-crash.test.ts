// Crash safety: SIGKILL real agents in every state and at random points during the slot write
// (power loss: the whole machine; agent crash: the system process only), then check that every
// node boots a good slot, its journal is consistent, each command has exactly one outcome, and
// replaying the event log gives a projection that matches the nodes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { catchUp, emptyProjection } from '../../projection/index.ts';
import type { AgentState, NodeEvent } from '../../schema/index.ts';
import { trustKeys } from '../../signing/index.ts';
import { assertBootable, assertCommandEvents, assertSettled, watchJournal } from './crash-checks.ts';
import { rng, startFleet, type Fleet, type TestAgent, type TestImage } from './harness.ts';

const SEED = Number(process.env['SLOTFLOW_CRASH_SEED'] ?? 20261122);
const AGENTS = 6;
const TRIALS_PER_AGENT = 19;
const STEP_DELAY_MS = 60;
const CHUNK_DELAY_MS = 4;
const CHUNKS = 16;

type Target = AgentState | 'mid-write';
// Fetching is the shortest state here (a few small chunks from a local server), so it is aimed
// at twice as often: a poll that sees it too late lands the kill in the next state.
const UPGRADE_TARGETS: Target[] = [
  'idle',
  'fetching',
  'fetching',
  'verifying',
  'writing',
  'mid-write',
  'mid-write',
  'mid-write',
  'armed',
  'rebooting',
  'trial-booted',
  'health-checking',
  'committed',
];

let fleet: Fleet;
let images: TestImage[];

before(async () => {
  fleet = await startFleet();
  images = [];
  for (let i = 0; i < TRIALS_PER_AGENT; i++) {
    const image = await fleet.image(`1.${i + 1}.0`, {
      seed: SEED + i,
      size: CHUNKS * 8 * 1024,
      chunkSize: 8 * 1024,
    });
    await fleet.publish(image);
    images.push(image);
  }
});
after(async () => {
  await fleet?.stop();
});

interface Trial {
  readonly node: string;
  readonly kind: 'upgrade' | 'failing-upgrade' | 'rollback';
  target: Target;
  readonly mode: 'power-loss' | 'agent-crash';
  /** The journal state the kill left behind (undefined: the command finished first). */
  killedIn?: AgentState | undefined;
  /** Bytes of a half-written slot image the kill left behind (a kill inside the write). */
  partialSlotBytes?: number;
  commandId?: string;
  outcome?: string;
}

/** Size of a slot image being written (`<slot>.img.tmp`), if the kill left one. */
async function partialSlot(agent: TestAgent): Promise<number | undefined> {
  const slots = join(agent.dataDir, 'slots');
  const tmp = (await readdir(slots).catch(() => [])).find((n) => n.endsWith('.img.tmp'));
  return tmp ? (await stat(join(slots, tmp)).catch(() => undefined))?.size : undefined;
}

async function runAgentTrials(agent: TestAgent, index: number, trials: Trial[]): Promise<void> {
  const random = rng(SEED * 31 + index);
  const failMarker = join(fleet.root, `${agent.nodeId}.fail-health`);
  let previousCommitted = false;
  for (let i = 0; i < TRIALS_PER_AGENT; i++) {
    const roll = random();
    const kind: Trial['kind'] =
      roll < 0.15 && previousCommitted ? 'rollback' : roll < 0.3 ? 'failing-upgrade' : 'upgrade';
    const targets: Target[] =
      kind === 'rollback'
        ? ['idle', 'armed', 'rebooting']
        : kind === 'failing-upgrade'
          ? ['health-checking', 'falling-back', 'falling-back']
          : UPGRADE_TARGETS;
    const trial: Trial = {
      node: agent.nodeId,
      kind,
      target: targets[(i + index) % targets.length]!,
      mode: random() < 0.7 ? 'power-loss' : 'agent-crash',
    };
    trials.push(trial);
    if (kind === 'failing-upgrade') await writeFile(failMarker, 'x');
    else await rm(failMarker, { force: true });

    let commandId: string;
    if (kind === 'rollback') {
      const boot = await agent.json('slots', 'boot-state.json');
      const other = await agent.json('slots', `${boot?.['active'] === 'a' ? 'b' : 'a'}.json`);
      commandId = await fleet.rollback(agent.nodeId, `r-rb${i}`, String(other?.['version']));
    } else {
      commandId = await fleet.upgrade(agent.nodeId, images[i]!.manifest, { rolloutId: `r-${i}` });
    }
    trial.commandId = commandId;
    const finished = () =>
      agent.events
        .forCommand(commandId)
        .some((e) =>
          ['UpgradeCommitted', 'NodeFellBack', 'NodeRolledBack', 'UpgradeCommandRejected'].includes(e.type),
        );

    if (trial.target !== 'idle') {
      const state = trial.target === 'mid-write' ? 'writing' : trial.target;
      const seen = await watchJournal(
        agent,
        (j) => j.state === state && j.op?.command.commandId === commandId,
        { give: finished },
      );
      // Inside the state's window (or, when the poll missed it, wherever the agent is now). A
      // mid-write kill waits for the slot file to grow, then lands somewhere in the write.
      if (seen && trial.target === 'mid-write') {
        const deadline = Date.now() + 2_000;
        while (!((await partialSlot(agent)) ?? 0) && Date.now() < deadline && !finished()) await sleep(2);
        await sleep(random() * CHUNKS * CHUNK_DELAY_MS);
      } else if (seen) {
        await sleep(random() * STEP_DELAY_MS * 0.8);
      }
    }
    if (!finished()) {
      if (trial.mode === 'agent-crash' && (await agent.proc.crashSystem())) {
        trial.killedIn = (await agent.journal()).state;
        trial.partialSlotBytes = await partialSlot(agent);
      } else {
        await agent.proc.powerOff();
        trial.killedIn = (await agent.journal()).state;
        trial.partialSlotBytes = await partialSlot(agent);
        await agent.powerOn();
      }
    }

    const outcome = await agent.events.outcome(commandId, 60_000);
    trial.outcome = outcome.type;
    assertCommandEvents(agent.events.forCommand(commandId), kind === 'rollback' ? 'rollback' : 'upgrade');
    if (kind === 'failing-upgrade') assert.equal(outcome.type, 'NodeFellBack');
    await assertSettled(agent, commandId, outcome);
    const running = await assertBootable(agent);
    if (outcome.type === 'UpgradeCommitted') assert.equal(running.version, images[i]!.manifest.version);
    if ('version' in outcome)
      assert.equal(running.version, outcome.version, 'the outcome reports what the node runs');
    previousCommitted = outcome.type === 'UpgradeCommitted';
  }
}

test(
  'agent crash safety - SIGKILL in every state and mid-write: bootable slot, consistent journal, one outcome per command, exact projection',
  { timeout: 600_000 },
  async () => {
    const health = (node: string) => ({
      healthChecks: [
        {
          name: 'app',
          command: ['sh', '-c', `test ! -e ${join(fleet.root, `${node}.fail-health`)}`],
          timeout: '5s',
        },
      ],
    });
    const agents = await Promise.all(
      Array.from({ length: AGENTS }, (_, k) =>
        fleet.addAgent({
          nodeId: `crash-${k}`,
          args: ['--initial-version', '1.0.0'],
          config: health(`crash-${k}`),
          env: {
            SLOTFLOW_FAULT_STEP_DELAY_MS: String(STEP_DELAY_MS),
            SLOTFLOW_FAULT_CHUNK_DELAY_MS: String(CHUNK_DELAY_MS),
          },
        }),
      ),
    );
    await Promise.all(
      agents.map((a) =>
        a.events.waitFor('NodeRegistered', (ev) => ev.some((e) => e.event.type === 'NodeRegistered')),
      ),
    );
    const trials: Trial[] = [];
    await Promise.all(
      agents.map(async (agent, k) => {
        try {
          await runAgentTrials(agent, k, trials);
        } catch (err) {
          const last = trials.filter((t) => t.node === agent.nodeId).at(-1);
          (err as Error).message +=
            `\nlast trial: ${JSON.stringify(last)}\n--- ${agent.nodeId} log ---\n${await agent.logTail(40)}`;
          throw err;
        }
      }),
    );

    const kills = trials.filter((t) => t.killedIn !== undefined);
    const states = new Set(kills.map((t) => t.killedIn));
    const summary = {
      trials: trials.length,
      kills: kills.length,
      killedIn: [...states].sort(),
      midWrite: trials.filter((t) => t.target === 'mid-write' && t.killedIn === 'writing').length,
      partialSlotWrites: trials.filter((t) => (t.partialSlotBytes ?? 0) > 0).length,
      outcomes: Object.fromEntries(
        [...new Set(trials.map((t) => t.outcome))].map((o) => [
          o,
          trials.filter((t) => t.outcome === o).length,
        ]),
      ),
    };
    console.log(`crash trials: ${JSON.stringify(summary)}`);
    assert.ok(kills.length >= 100, `at least 100 kills, got ${kills.length}`);
    for (const state of [
      'idle',
      'fetching',
      'verifying',
      'writing',
      'armed',
      'rebooting',
      'trial-booted',
      'health-checking',
      'committed',
      'falling-back',
    ] as const) {
      assert.ok(states.has(state), `a kill landed in state ${state}`);
    }
    assert.ok(summary.midWrite >= 10, 'kills landed during the slot write');
    assert.ok(
      summary.partialSlotWrites >= 5,
      'kills left half-written slot images behind (and the nodes recovered)',
    );

    // The event log replayed from sequence 1 matches every node, and read whole it still holds
    // each command's steps once: a step a node took again after its trial was checked shows here.
    const projection = await catchUp(emptyProjection(), fleet.log, {
      trustedKeys: trustKeys(fleet.key.publicKey),
    });
    const byCommand = new Map<string, NodeEvent[]>();
    for await (const { event } of fleet.log.replay()) {
      const commandId = 'commandId' in event ? event.commandId : undefined;
      if (commandId) byCommand.set(commandId, [...(byCommand.get(commandId) ?? []), event as NodeEvent]);
    }
    for (const t of trials)
      assertCommandEvents(
        byCommand.get(t.commandId ?? '') ?? [],
        t.kind === 'rollback' ? 'rollback' : 'upgrade',
      );
    for (const agent of agents) {
      const running = await assertBootable(agent);
      const view = projection.nodes.get(agent.nodeId);
      assert.equal(view?.version, running.version, `${agent.nodeId}: projected version`);
      assert.equal(view?.activeSlot, running.slot, `${agent.nodeId}: projected slot`);
      assert.equal(view?.state, 'idle');
    }
  },
);
