// Rollouts on real (emulated) machines: two QEMU VMs run slotflow agents with the grub slot
// driver, a real Temporal dev server and nats-server run the control plane, and the image each
// rollout writes is built from the lab slot's rootfs by the image build workflow. The agents
// fetch it from the NATS object store through the forwarded port, write the passive slot, arm
// a GRUB trial and really reboot; GRUB's boot counting alone decides what boots next.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startRollout } from '../../cli/rollout-client.ts';
import { readDiskGrubenv } from '../../lab/index.ts';
import { ReleaseKind, writeReleaseRootfs } from '../../lab/release-rootfs.ts';
import type { ControlPlane } from '../helpers/control-plane.ts';
import { rolloutEvents, waitForStatus } from '../helpers/rollouts.ts';
import { publishRootfs, vmTestBed, waitForAgents } from './vm-fleet.ts';

const NODES = ['vm-1', 'vm-2'] as const;
const FLEET_NODES = NODES.map((nodeId) => ({ nodeId }));
// TCG on a busy 2-core host: a guest fetches the ~200 MiB slot image at 2 to 5 MB/s and a
// reboot takes 45 s to 2 minutes; the limits leave room for a loaded machine.
const TIMEOUTS = { accept: '3m', write: '8m', reboot: '5m', health: '4m' };

const PHASES = [
  ['fetch', 'UpgradeCommandAccepted', 'ArtifactFetched'],
  ['write', 'ArtifactFetched', 'SlotWritten'],
  ['reboot', 'NodeRebooting', 'NodeBooted'],
  ['health', 'NodeBooted', 'UpgradeCommitted'],
  ['total', 'UpgradeCommandAccepted', 'UpgradeCommitted'],
] as const;

/** Seconds each phase of each node's upgrade took, from the events' timestamps. */
async function phaseSeconds(plane: ControlPlane, rolloutId: string): Promise<string> {
  const events = (await rolloutEvents(plane.nc, rolloutId)).map((e) => e.event);
  return NODES.map((nodeId) => {
    const at = (type: string) => {
      const e = events.find((x) => x.type === type && 'nodeId' in x && x.nodeId === nodeId);
      return e ? Date.parse(e.at) : undefined;
    };
    const parts = PHASES.map(([name, from, to]) => {
      const a = at(from);
      const b = at(to);
      return `${name} ${a !== undefined && b !== undefined ? ((b - a) / 1000).toFixed(1) : '-'} s`;
    });
    return `${nodeId}: ${parts.join(', ')}`;
  }).join('\n');
}

describe('vm lab - rollouts through real GRUB reboots', async () => {
  const { missing, dir, start } = await vmTestBed('slotflow-vm-rollout-');

  test(
    'a rollout upgrades two VMs: slot B written, GRUB trial boot, health check, commit',
    { skip: missing, timeout: 1_080_000 },
    async () => {
      const started = Date.now();
      const { plane, fleet } = await start(FLEET_NODES);
      const digest = await publishRootfs(
        plane.client,
        await writeReleaseRootfs(fleet.disk, join(dir, 'rootfs-2'), '2.0.0'),
        '2.0.0',
      );
      process.stderr.write(`control plane, VMs and image 2.0.0 in ${(Date.now() - started) / 1000} s\n`);
      await waitForAgents(plane, fleet, NODES);

      const rolloutStarted = Date.now();
      await startRollout(plane.client, {
        id: 'vm-2-0-0',
        image: { type: 'published', digest },
        version: '2.0.0',
        selector: 'site=lab',
        waves: '100%',
        maxUnavailable: 2,
        timeouts: TIMEOUTS,
      });
      const final = await waitForStatus(
        plane.client,
        'vm-2-0-0',
        (s) => !['starting', 'building', 'running'].includes(s.status),
        900_000,
      );
      process.stderr.write(
        `rollout 2.0.0: ${final.status} in ${((Date.now() - rolloutStarted) / 1000).toFixed(1)} s\n${await phaseSeconds(plane, 'vm-2-0-0')}\n`,
      );
      assert.equal(final.status, 'succeeded', JSON.stringify(final));
      assert.deepEqual(Object.fromEntries(NODES.map((id) => [id, final.nodes[id]?.state])), {
        'vm-1': 'upgraded',
        'vm-2': 'upgraded',
      });
      for (const [i, vm] of fleet.vms.entries()) {
        assert.deepEqual(await fleet.boots(i), ['A', 'B'], `${vm.name} rebooted once, into slot B`);
        assert.match(await vm.console(), /root=PARTLABEL=root-b rauc\.slot=B/);
      }
      // The VMs stay up for the next test; the disks' environment blocks are read while they run,
      // which is safe: each agent wrote its block and synced before committing.
      for (const [i, image] of fleet.images.entries()) {
        const env = await readDiskGrubenv(image, fleet.disk.partitions);
        assert.deepEqual(
          [env['ORDER'], env['B_OK'], env['B_TRY']],
          ['B A', '1', '0'],
          `${NODES[i]}: slot B committed (${JSON.stringify(env)})`,
        );
      }
    },
  );

  test(
    'an image whose init cannot start falls back by GRUB boot counting alone and pauses the rollout',
    { skip: missing, timeout: 1_080_000 },
    async () => {
      // After the first test the VMs run 2.0.0 on slot B; run alone, this test starts them on A.
      const { plane, fleet } = await start(FLEET_NODES);
      const digest = await publishRootfs(
        plane.client,
        await writeReleaseRootfs(fleet.disk, join(dir, 'rootfs-3'), '3.0.0', ReleaseKind.initPanics),
        '3.0.0',
      );
      await waitForAgents(plane, fleet, NODES);
      const offsets = await Promise.all(fleet.vms.map(async (vm) => (await vm.console()).length));
      const bootsBefore = await Promise.all(fleet.vms.map((_, i) => fleet.boots(i)));
      const rolloutStarted = Date.now();
      await startRollout(plane.client, {
        id: 'vm-3-0-0',
        image: { type: 'published', digest },
        version: '3.0.0',
        selector: 'site=lab',
        // A canary of one: its failure breaches the threshold before the second VM is touched.
        waves: '1,100%',
        maxUnavailable: 1,
        onFailure: 'pause',
        timeouts: TIMEOUTS,
      });
      const final = await waitForStatus(
        plane.client,
        'vm-3-0-0',
        (s) => !['starting', 'building', 'running'].includes(s.status),
        900_000,
      );
      process.stderr.write(
        `rollout 3.0.0: ${final.status} in ${((Date.now() - rolloutStarted) / 1000).toFixed(1)} s\n${await phaseSeconds(plane, 'vm-3-0-0')}\n`,
      );
      assert.equal(final.status, 'paused', JSON.stringify(final));
      const canary = NODES.find((id) => final.nodes[id]?.state === 'fell-back');
      assert.ok(canary, `one node fell back: ${JSON.stringify(final.nodes)}`);
      const other = NODES.find((id) => id !== canary)!;
      assert.equal(final.nodes[other]?.state, 'pending', 'the second wave never started');

      const i = NODES.indexOf(canary);
      const from = bootsBefore[i]!.at(-1)!;
      const to = from === 'A' ? 'B' : 'A';
      const log = (await fleet.vms[i]!.console()).slice(offsets[i]);
      assert.match(
        log,
        new RegExp(`slotflow: booting slot ${to} from hd0,gpt${to === 'A' ? 2 : 3}`),
        `GRUB booted the trial of slot ${to}`,
      );
      assert.match(log, /Kernel panic - not syncing: Attempted to kill init/, 'the new init could not start');
      assert.match(
        log,
        new RegExp(`slotflow-lab: booted slot ${from}`),
        `GRUB fell back to ${from} by itself`,
      );
      assert.doesNotMatch(
        log,
        new RegExp(`slotflow-lab: booted slot ${to}`),
        `${to} never reached userspace`,
      );
      const events = (await rolloutEvents(plane.nc, 'vm-3-0-0')).map((e) => e.event);
      assert.ok(
        events.some((e) => e.type === 'NodeFellBack' && 'nodeId' in e && e.nodeId === canary),
        `the agent reported NodeFellBack: ${events.map((e) => e.type).join(', ')}`,
      );
      const env = await readDiskGrubenv(fleet.images[i]!, fleet.disk.partitions);
      assert.equal(env[`${to}_TRY`], '1', `the failed trial of ${to} stays used up (${JSON.stringify(env)})`);
      assert.equal(env[`${from}_OK`], '1', `slot ${from} stays bootable`);
      assert.deepEqual(await fleet.boots(1 - i), bootsBefore[1 - i], `${other} was not rebooted`);
    },
  );
});
