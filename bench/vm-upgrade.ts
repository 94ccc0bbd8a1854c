// One upgrade of a QEMU VM (grub slot driver, a real reboot), from "command accepted" to
// "committed", split into fetch, write, reboot and health check from the agent's events, against
// the work the same kind of VM cannot avoid: streaming the same image into its passive slot with
// wget | dd and a bare reboot (the lab's reboot command to the next init), measured in a VM booted
// from the same disk right after. The ratio is slotflow's time over that floor.
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createSquashfsBuilder } from '../activities/builders/rootfs.ts';
import { startRollout } from '../cli/rollout-client.ts';
import { labMissing } from '../test/lab/lab-missing.ts';
import { publishRootfs, startPlaneAndFleet, waitForAgents } from '../test/lab/vm-fleet.ts';
import type { ControlPlane } from '../test/helpers/control-plane.ts';
import { rolloutEvents, waitForStatus } from '../test/helpers/rollouts.ts';
import { agentLabEnv, type LabFleet } from '../lab/fleet.ts';
import { cloneDisk, startVm, type LabVm } from '../lab/index.ts';
import { ReleaseKind, writeReleaseRootfs } from '../lab/release-rootfs.ts';
import { execaRunner } from '../runtime/runner.ts';
import { keysDir } from '../signing/index.ts';
import { GoalKind, measured, notMeasured, round, type Figure, type FigureSpec } from './figure.ts';
import type { BenchContext, BenchModule } from './suite.ts';

const NODE = 'bench-vm';
const VERSION = '2.0.0';

const spec: FigureSpec = {
  id: 'vm-upgrade-overhead',
  title: 'VM upgrade, command accepted → committed (grub driver, real reboot, TCG)',
  comparedWith: 'wget | dd of the same image into the passive slot + a bare reboot, same VM',
  goal: { kind: GoalKind.report, text: 'report (slotflow time over the unavoidable work)' },
};

/** Seconds between two of the node's events (first of each type). */
function between(events: { type: string; at: string }[], from: string, to: string): number | undefined {
  const a = events.find((e) => e.type === from);
  const b = events.find((e) => e.type === to);
  return a && b ? (Date.parse(b.at) - Date.parse(a.at)) / 1000 : undefined;
}

/** The upgrade through slotflow: a one-VM rollout; seconds per phase. */
async function slotflowUpgrade(ctx: BenchContext, plane: ControlPlane, fleet: LabFleet, rootfs: string) {
  ctx.say(`vm-upgrade: publishing ${VERSION} and rolling it out to ${NODE}`);
  const digest = await publishRootfs(plane.client, rootfs, VERSION);
  await startRollout(plane.client, {
    id: 'bench-vm',
    image: { type: 'published', digest },
    version: VERSION,
    waves: '100%',
    timeouts: { accept: '4m', write: '10m', reboot: '6m', health: '5m' },
  });
  const final = await waitForStatus(
    plane.client,
    'bench-vm',
    (s) => !['starting', 'building', 'running'].includes(s.status),
    30 * 60_000,
  );
  if (final.status !== 'succeeded')
    throw new Error(`the rollout ended ${final.status}: ${JSON.stringify(final)}`);
  const events = (await rolloutEvents(plane.nc, 'bench-vm'))
    .map((e) => e.event)
    .filter((e) => 'nodeId' in e && e.nodeId === NODE);
  const phase = (from: string, to: string) => {
    const s = between(events, from, to);
    if (s === undefined) throw new Error(`no ${from} → ${to} in ${events.map((e) => e.type).join(', ')}`);
    return round(s, 1);
  };
  return {
    fetchS: phase('UpgradeCommandAccepted', 'ArtifactFetched'),
    writeS: phase('ArtifactFetched', 'SlotWritten'),
    armS: phase('SlotWritten', 'NodeRebooting'),
    rebootS: phase('NodeRebooting', 'NodeBooted'),
    healthS: phase('NodeBooted', 'UpgradeCommitted'),
    totalS: phase('UpgradeCommandAccepted', 'UpgradeCommitted'),
  };
}

/** Serves one file over HTTP on loopback (the guest reaches it through a guestfwd). */
async function serveFile(path: string): Promise<Server> {
  const size = (await stat(path)).size;
  const server = createServer((_, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    createReadStream(path).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/** The floor: the same image streamed into the passive slot with wget | dd, then a bare reboot. */
async function floor(ctx: BenchContext, fleet: LabFleet, rootfs: string, keyPem: string) {
  const built = join(ctx.workDir, 'floor');
  await createSquashfsBuilder({ runner: execaRunner }).build({
    source: rootfs,
    version: VERSION,
    outDir: built,
    format: 'squashfs',
  });
  const image = join(built, 'image.squashfs');
  const server = await serveFile(image);
  let vm: LabVm | undefined;
  try {
    const disk = join(ctx.workDir, 'floor-vm.img');
    await cloneDisk(fleet.disk, disk, {
      'lab/lab.env': agentLabEnv({
        nodeId: 'bench-floor',
        env: { LAB_SERVICE: 'ddbench', LAB_BENCH_URL: 'http://10.0.2.100:8080/image' },
      }),
      'lab/keys/control-plane.pub': keyPem,
    });
    ctx.say('vm-upgrade: the same image with wget | dd and a bare reboot, in a VM of the same disk');
    vm = await startVm({
      name: 'bench-floor',
      disk,
      dir: join(ctx.workDir, 'floor-vm'),
      guestForwards: [{ guestPort: 8080, hostPort: (server.address() as AddressInfo).port }],
    });
    const dd = await vm.waitFor(/slotflow-lab: bench (dd seconds=([\d.]+)|dd failed.*)/, {
      timeoutMs: 30 * 60_000,
    });
    if (!dd.match[2]) throw new Error(`the baseline's dd failed in the guest: ${dd.match[0]}`);
    const rebooting = await vm.waitFor(/slotflow-lab: rebooting/, { offset: dd.offset, timeoutMs: 60_000 });
    const rebootSeen = Date.now();
    await vm.waitFor(/slotflow-lab: booted slot/, { offset: rebooting.offset + 1, timeoutMs: 10 * 60_000 });
    return {
      ddS: Number(dd.match[2]),
      bareRebootS: round((Date.now() - rebootSeen) / 1000, 1),
      imageBytes: (await stat(image)).size,
    };
  } finally {
    await vm?.stop();
    await new Promise((resolve) => server.close(resolve));
  }
}

export const vmUpgradeBench: BenchModule = {
  name: 'vm-upgrade',
  summary: 'an upgrade of a QEMU VM through a real reboot against wget | dd and a bare reboot',
  figures: () => [spec],
  async run(ctx): Promise<Figure[]> {
    if (ctx.size === 'tiny') {
      return [notMeasured(spec, 'unavailable', 'tiny runs boot no VMs; `npm run bench` measures it')];
    }
    const missing = await labMissing();
    if (missing) return [notMeasured(spec, 'unavailable', missing)];
    let plane: ControlPlane | undefined;
    let fleet: LabFleet | undefined;
    try {
      ({ plane, fleet } = await startPlaneAndFleet(join(ctx.workDir, 'vms'), [{ nodeId: NODE }]));
      await waitForAgents(plane, fleet, [NODE]);
      const rootfs = await writeReleaseRootfs(
        fleet.disk,
        join(ctx.workDir, 'rootfs'),
        VERSION,
        ReleaseKind.good,
      );
      const upgrade = await slotflowUpgrade(ctx, plane, fleet, rootfs);
      await fleet.stop();
      const keyPem = await readFile(join(keysDir(plane.home), 'control-plane.pub'), 'utf8');
      const base = await floor(ctx, fleet, rootfs, keyPem);
      const floorS = base.ddS + base.bareRebootS;
      return [
        measured(
          spec,
          { amount: upgrade.totalS, unit: 's' },
          { amount: round(floorS, 1), unit: 's' },
          {
            reason: `fetch ${upgrade.fetchS} s + write ${upgrade.writeS} s + arm ${upgrade.armS} s + reboot ${upgrade.rebootS} s + health ${upgrade.healthS} s, against wget | dd ${base.ddS} s + bare reboot ${base.bareRebootS} s of a ${(base.imageBytes / 1048576).toFixed(0)} MiB image`,
            details: { ...upgrade, ...base },
          },
        ),
      ];
    } catch (err) {
      return [notMeasured(spec, 'failed', (err as Error).message, { error: (err as Error).stack })];
    } finally {
      await fleet?.stop();
      await plane?.stop();
    }
  },
};
