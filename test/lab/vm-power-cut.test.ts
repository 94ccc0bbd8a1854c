// Power cuts for real: two agent VMs upgrade through Temporal rollouts while the test kills their
// QEMU processes at random points (mid-fetch, mid-write, around arming, mid-reboot, during the
// health check, just after the commit) and powers them on again. Killing QEMU drops the guest's
// page cache and writes in flight. After every cut the VM must boot; every upgrade must end
// committed on the new slot or back on the old one as its outcome says; the event log must hold
// every event of each upgrade's chain; the Temporal node workflows must end from those events.
//
// SLOTFLOW_POWER_CUTS (default 10) sets how many cuts to make and SLOTFLOW_POWER_CUT_SEED
// replays a campaign; `npm run soak -- power-cut --trials N` runs a longer one.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startRollout } from '../../cli/rollout-client.ts';
import { TRIES_RESET, bootsIn } from '../../lab/console.ts';
import {
  CUT_WINDOW,
  CutPoint,
  REQUIRED_CHAIN,
  missingFromChain,
  planUpgradeCuts,
  seededRandom,
  summarize,
  type CutRecord,
  type UpgradeRecord,
} from '../../lab/power-cut.ts';
import { ReleaseKind, writeReleaseRootfs } from '../../lab/release-rootfs.ts';
import type { LabVm } from '../../lab/qemu.ts';
import { nodeEventSubject } from '../../schema/index.ts';
import { commandIdFor } from '../../workflows/definitions.ts';
import type { ControlPlane } from '../helpers/control-plane.ts';
import { rolloutEvents, waitForStatus } from '../helpers/rollouts.ts';
import { publishRootfs, vmTestBed, waitForAgents } from './vm-fleet.ts';

const NODES = ['cut-1', 'cut-2'] as const;
const TARGET_CUTS = Number(process.env['SLOTFLOW_POWER_CUTS'] ?? '10');
const SEED = Number(process.env['SLOTFLOW_POWER_CUT_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const REPORT = process.env['SLOTFLOW_POWER_CUT_REPORT'];
const TIMEOUTS = { accept: '4m', write: '10m', reboot: '6m', health: '5m' };
// A guest under TCG reaches its init in 15 to 30 s; a host loaded by other work, several times that.
const BOOT_LIMIT_MS = 420_000;
// The events after which the trial boot is not armed yet.
const BEFORE_ARMING = new Set(['UpgradeCommandAccepted', 'ArtifactFetched', 'SlotWritten']);
const TERMINAL = new Set(['UpgradeCommitted', 'NodeFellBack', 'UpgradeCommandRejected']);

/** Node events as they arrive on NATS (re-sends after a cut included), per node. */
class EventWatch {
  readonly seen: { type: string; commandId: string | undefined; index: number }[] = [];
  private waiters: (() => void)[] = [];

  readonly nodeId: string;

  constructor(plane: ControlPlane, nodeId: string) {
    this.nodeId = nodeId;
    const sub = plane.nc.subscribe(nodeEventSubject(nodeId, '*'));
    void (async () => {
      for await (const msg of sub) {
        const event = msg.json<{ type: string; commandId?: string }>();
        this.seen.push({ type: event.type, commandId: event.commandId, index: this.seen.length });
        for (const wake of this.waiters.splice(0)) wake();
      }
    })();
  }

  /** The number of events seen so far: a mark to wait for later ones. */
  get mark(): number {
    return this.seen.length;
  }

  lastOf(commandId: string): string | undefined {
    return this.seen.filter((e) => e.commandId === commandId).at(-1)?.type;
  }

  /** Waits for an event of the command matching `want` at or after `from`; undefined at the deadline. */
  async waitFor(
    commandId: string,
    from: number,
    want: (type: string) => boolean,
    timeoutMs: number,
  ): Promise<string | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.seen.slice(from).find((e) => e.commandId === commandId && want(e.type));
      if (hit) return hit.type;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), sleep(Math.min(left, 1000))]);
    }
  }
}

/** Kills the VM's QEMU, powers it on again and waits for its init; the slot it came up on. */
async function powerCycle(
  vm: LabVm,
): Promise<{ slot: string | undefined; seconds: number; triesReset: boolean }> {
  await vm.powerCut();
  const offset = (await vm.console()).length;
  const triesReset = async () => (await vm.console()).slice(offset).includes(TRIES_RESET);
  const started = Date.now();
  await vm.powerOn();
  try {
    const { match } = await vm.waitFor(/slotflow-lab: booted slot (\w+)/, {
      offset,
      timeoutMs: BOOT_LIMIT_MS,
    });
    return { slot: match[1], seconds: (Date.now() - started) / 1000, triesReset: await triesReset() };
  } catch {
    return { slot: undefined, seconds: (Date.now() - started) / 1000, triesReset: await triesReset() };
  }
}

/** One upgrade of one VM to `version`, with the planned power cuts; what happened. */
async function upgradeWithCuts(
  plane: ControlPlane,
  vm: LabVm,
  watch: EventWatch,
  o: { rolloutId: string; version: string; digest: string; random: () => number },
): Promise<UpgradeRecord> {
  const nodeId = watch.nodeId;
  const commandId = commandIdFor(o.rolloutId, nodeId, 'upgrade');
  const fromSlot = bootsIn(await vm.console()).at(-1)?.slot ?? 'A';
  const toSlot = fromSlot === 'A' ? 'B' : 'A';
  const plan = planUpgradeCuts(o.random);
  process.stderr.write(
    `${nodeId} ${o.version}: ${fromSlot} -> ${toSlot}, cuts planned ${plan.map((c) => `${c.point}+${c.delayMs}ms`).join(', ')}\n`,
  );
  let from = watch.mark;
  await startRollout(plane.client, {
    id: o.rolloutId,
    image: { type: 'published', digest: o.digest },
    version: o.version,
    selector: `vm=${nodeId}`,
    waves: '100%',
    maxUnavailable: 1,
    // A node that falls back is an outcome this campaign expects, not a reason to pause.
    failureThreshold: { type: 'count', count: 1 },
    timeouts: TIMEOUTS,
  });
  const cuts: CutRecord[] = [];
  for (const cut of plan) {
    const window = CUT_WINDOW[cut.point];
    const opened = await watch.waitFor(
      commandId,
      from,
      (type) => type === window.after || (TERMINAL.has(type) && cut.point !== CutPoint.committed),
      15 * 60_000,
    );
    if (opened === undefined) throw new Error(`${nodeId}: no ${window.after} within 15 minutes`);
    if (TERMINAL.has(opened) && opened !== window.after) break; // the upgrade ended before this point
    await sleep(cut.delayMs);
    const lastEventBefore = watch.lastOf(commandId);
    const boot = await powerCycle(vm);
    from = watch.mark;
    cuts.push({
      vm: nodeId,
      upgrade: o.rolloutId,
      planned: cut.point,
      lastEventBefore,
      bootSeconds: boot.seconds,
      bootedSlot: boot.slot,
      triesReset: boot.triesReset,
    });
    process.stderr.write(
      `${nodeId}: cut at ${cut.point} (last event ${lastEventBefore ?? 'none'}); booted ${boot.slot ?? 'NOTHING'} in ${boot.seconds.toFixed(1)} s\n`,
    );
    if (boot.slot === undefined) break;
  }
  const unbootable = cuts.some((c) => c.bootedSlot === undefined);
  const final = unbootable
    ? undefined
    : await waitForStatus(
        plane.client,
        o.rolloutId,
        (s) => !['starting', 'building', 'running'].includes(s.status),
        15 * 60_000,
      );
  // The rollout ends on the node's last event; the log has it before the workflow saw it.
  const events = (await rolloutEvents(plane.nc, o.rolloutId))
    .map((e) => e.event)
    .filter((e) => 'nodeId' in e && e.nodeId === nodeId && 'commandId' in e && e.commandId === commandId)
    .map((e) => e.type);
  const outcome = events.includes('UpgradeCommitted') ? 'committed' : 'fell-back';
  const missingEvents = missingFromChain(
    events,
    outcome === 'committed' ? REQUIRED_CHAIN.committed : REQUIRED_CHAIN.fellBackAfterTrial,
  );
  // Before the trial boot is armed a cut only delays the upgrade: it must go on to the commit.
  const armedBeforeACut = cuts.some(
    (c) => c.lastEventBefore !== undefined && !BEFORE_ARMING.has(c.lastEventBefore),
  );
  if (!unbootable) {
    assert.equal(
      final?.nodes[nodeId]?.state,
      outcome === 'committed' ? 'upgraded' : 'fell-back',
      `${nodeId} ${o.rolloutId}: the node workflow ended from the agent's events (${JSON.stringify(final?.nodes[nodeId])})`,
    );
    if (!armedBeforeACut) {
      assert.equal(
        outcome,
        'committed',
        `${nodeId} ${o.rolloutId}: cuts before arming resume the upgrade (${events})`,
      );
    }
  }
  return {
    vm: nodeId,
    upgrade: o.rolloutId,
    cuts,
    outcome,
    missingEvents,
    finalSlot: bootsIn(await vm.console()).at(-1)?.slot ?? 'none',
    expectedSlot: outcome === 'committed' ? toSlot : fromSlot,
  };
}

describe('vm lab - power cuts during upgrades', async () => {
  const { missing, dir, start } = await vmTestBed('slotflow-vm-power-cut-');

  test(
    `${TARGET_CUTS} power cuts at random points of upgrades: every VM boots, no event is lost`,
    { skip: missing, timeout: Math.max(1_200_000, TARGET_CUTS * 180_000) },
    async () => {
      process.stderr.write(`power-cut campaign: seed ${SEED} (SLOTFLOW_POWER_CUT_SEED=${SEED} replays it)\n`);
      const random = seededRandom(SEED);
      const started = Date.now();
      const { plane, fleet } = await start(
        NODES.map((nodeId) => ({ nodeId, env: { LAB_LABELS: `vm=${nodeId}` } })),
      );
      const watches = NODES.map((id) => new EventWatch(plane, id));
      // Each round's image is built while the VMs boot or the round before runs.
      const images = new Map<number, Promise<string>>();
      const imageFor = (round: number): Promise<string> => {
        let image = images.get(round);
        if (image === undefined) {
          const version = `2.${round}.0`;
          image = writeReleaseRootfs(
            fleet.disk,
            join(dir, `rootfs-${version}`),
            version,
            ReleaseKind.good,
          ).then((rootfs) => publishRootfs(plane.client, rootfs, version));
          image.catch(() => undefined); // awaited (and reported) when its round starts
          images.set(round, image);
        }
        return image;
      };
      void imageFor(1);
      await waitForAgents(plane, fleet, NODES);
      const upgrades: UpgradeRecord[] = [];
      const cutsSoFar = () => upgrades.reduce((n, u) => n + u.cuts.length, 0);
      for (let round = 1; cutsSoFar() < TARGET_CUTS; round++) {
        assert.ok(
          round <= TARGET_CUTS,
          `${TARGET_CUTS} cuts planned, ${cutsSoFar()} made in ${round - 1} rounds`,
        );
        const version = `2.${round}.0`;
        const digest = await imageFor(round);
        void imageFor(round + 1);
        // Each VM's plan is drawn before either runs, so a seed gives the same plans every time.
        const randoms = NODES.map(() => seededRandom(Math.floor(random() * 2 ** 31)));
        const round_ = await Promise.all(
          NODES.map((nodeId, i) =>
            upgradeWithCuts(plane, fleet.vms[i]!, watches[i]!, {
              rolloutId: `cut-${round}-${nodeId}`,
              version,
              digest,
              random: randoms[i]!,
            }),
          ),
        );
        upgrades.push(...round_);
        if (round_.some((u) => u.cuts.some((c) => c.bootedSlot === undefined))) break;
      }
      await Promise.allSettled(images.values()); // the next round's image, built for nothing
      const summary = { ...summarize(upgrades, SEED), seconds: Math.round((Date.now() - started) / 1000) };
      process.stderr.write(`power-cut campaign: ${JSON.stringify(summary)}\n`);
      if (REPORT) {
        await mkdir(join(REPORT, '..'), { recursive: true });
        await writeFile(REPORT, JSON.stringify({ summary, upgrades }, null, 2) + '\n');
      }
      assert.equal(summary.unbootable, 0, 'every VM booted after every cut');
      assert.equal(summary.triesReset, 0, 'GRUB always found a slot that may boot');
      assert.ok(summary.cuts >= TARGET_CUTS, `${summary.cuts} cuts made, ${TARGET_CUTS} wanted`);
      for (const u of upgrades) {
        assert.deepEqual(u.missingEvents, [], `${u.vm} ${u.upgrade}: no event of the chain is lost`);
        assert.equal(
          u.finalSlot,
          u.expectedSlot,
          `${u.vm} ${u.upgrade}: ${u.outcome} and runs slot ${u.finalSlot}`,
        );
      }
    },
  );
});
