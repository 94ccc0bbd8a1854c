import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { openEventLog } from '../eventlog/index.ts';
import { ReleaseKind, writeReleaseRootfs } from '../lab/release-rootfs.ts';
import { startLabFleet, type LabFleet } from '../lab/fleet.ts';
import { acceptWhenPending, localAuthority } from '../trust/index.ts';
import { catchUp, emptyProjection } from '../projection/index.ts';
import { loadConnectionConfig } from '../runtime/config.ts';
import { connectNats } from '../runtime/nats.ts';
import { connectTemporal } from '../runtime/temporal.ts';
import { initKeys, keysDir } from '../signing/index.ts';
import { stackDown } from '../stack/index.ts';
import { createStatusPrinter, isFinal, renderStatus } from '../cli/progress.ts';
import { startRollout } from '../cli/rollout-client.ts';
import { rolloutSearchUrl } from '../cli/ui-url.ts';
import { rolloutWorkflowId, statusQuery, type RolloutStatusView } from '../workflows/definitions.ts';
import { ensureLocalStack } from './local-stack.ts';
import { createProcessGroup } from './processes.ts';

/** Which failure the VM demo injects into one node. */
export const VmFailure = {
  /** The node's health check fails after it boots the new slot: the agent falls back. */
  health: 'health',
  /** The new image's init exits at once: the kernel panics and GRUB falls back on its own. */
  boot: 'boot',
} as const;
export type VmFailure = (typeof VmFailure)[keyof typeof VmFailure];

export interface VmDemoOptions {
  nodes: number;
  exit: boolean;
  injectFailure: VmFailure | undefined;
  home: string;
  stackDir: string;
  logger: Logger;
  out: NodeJS.WriteStream;
}

// Phase limits for emulated machines: Node.js alone takes ~40 s to start in a TCG guest.
const VM_TIMEOUTS = { accept: '3m', write: '5m', reboot: '5m', health: '3m' };
const REGISTER_TIMEOUT_MS = 360_000;

/** A guest's NATS creds and CA (contents), from a node environment of a secured stack. */
async function guestNats(env: Record<string, string>): Promise<{ nats?: { creds: string; ca: string } }> {
  const creds = env['NATS_CREDS'];
  const ca = env['NATS_TLS_CA'];
  if (!creds || !ca) return {};
  return { nats: { creds: await readFile(creds, 'utf8'), ca: await readFile(ca, 'utf8') } };
}

/**
 * The demo on QEMU VMs: N lab VMs run agents with the grub slot driver against the local stack,
 * the 2.0.0 slot image is built from the lab slot's rootfs by the image build workflow, and a
 * canary + waves rollout writes it, arms GRUB trials and really reboots the VMs. Returns the
 * rollout's final status.
 */
export async function runVmDemo(o: VmDemoOptions): Promise<RolloutStatusView> {
  const say = (line: string) => o.out.write(`${line}\n`);
  const { env, ui, workerEnv, nodeEnv } = await ensureLocalStack(o.stackDir, o.home, say);
  const demoDir = join(o.home, 'demo-vm');
  const vmDir = join(demoDir, 'vms');
  await rm(vmDir, { recursive: true, force: true });
  await mkdir(join(demoDir, 'logs'), { recursive: true });
  await initKeys(o.home);
  const config = loadConnectionConfig({ ...process.env, ...env });
  const natsPort = Number(new URL(config.nats.servers[0] ?? env['NATS_URL'] ?? '').port);
  const group = createProcessGroup();
  const nc = await connectNats(config.nats, 'slotflow-demo-vm');
  const client = await connectTemporal(config.temporal);
  let fleet: LabFleet | undefined;
  try {
    group.start('worker', ['worker'], workerEnv, join(demoDir, 'logs', 'worker.log'));
    const nodeIds = Array.from({ length: o.nodes }, (_, i) => `vm-${i + 1}`);
    const failing = o.injectFailure === VmFailure.health ? nodeIds.at(-1) : undefined;
    say(
      `building the lab disk and starting ${o.nodes} QEMU VMs (console logs in ${vmDir}/<node>/console.log)…`,
    );
    fleet = await startLabFleet({
      dir: vmDir,
      natsPort,
      trustedKeyPem: await readFile(join(keysDir(o.home), 'control-plane.pub'), 'utf8'),
      nodes: await Promise.all(
        nodeIds.map(async (nodeId) => ({
          nodeId,
          ...(await guestNats(await nodeEnv(nodeId))),
          env: {
            LAB_LABELS: 'demo=vm',
            ...(nodeId === failing ? { LAB_AGENT_ARGS: '--health-check app-ready=false' } : {}),
          },
        })),
      ),
    });
    if (failing) say(`injected failure: ${failing} will fail its health check after booting the new slot`);

    const log = await openEventLog(nc);
    // A VM makes its key on first boot and asks to be enrolled; the demo operator accepts it.
    const authority = await localAuthority(nc, log, o.home, 'demo');
    await acceptWhenPending(authority, nodeIds, { timeoutMs: REGISTER_TIMEOUT_MS });
    const trust = { trustedKeys: authority.trustedKeys };
    const deadline = Date.now() + REGISTER_TIMEOUT_MS;
    for (;;) {
      const projection = await catchUp(emptyProjection(), log, trust);
      const ready = nodeIds.filter((id) => projection.nodes.has(id)).length;
      if (ready === o.nodes) break;
      if (Date.now() > deadline)
        throw new Error(`only ${ready} of ${o.nodes} VM agents registered within 6 minutes; see ${vmDir}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    say(`all ${o.nodes} VM agents registered (grub slot driver, booted slot A)`);

    const kind = o.injectFailure === VmFailure.boot ? ReleaseKind.initPanics : ReleaseKind.good;
    const rootfs = await writeReleaseRootfs(fleet.disk, join(demoDir, 'rootfs-2.0.0'), '2.0.0', kind);
    if (kind === ReleaseKind.initPanics)
      say('injected failure: the 2.0.0 image cannot start its init; the canary will not reach userspace');
    const rolloutId = `demo-vm-${new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)}`;
    await startRollout(client, {
      id: rolloutId,
      image: { type: 'rootfs', path: rootfs, format: 'squashfs' },
      version: '2.0.0',
      selector: 'demo=vm',
      waves: '1,100%',
      maxUnavailable: 2,
      failureThreshold: '0',
      onFailure: 'rollback',
      timeouts: VM_TIMEOUTS,
    });
    say(`rollout ${rolloutId}: 2.0.0 to ${o.nodes} VMs, a canary then the rest, rollback on any failure`);
    const printer = createStatusPrinter(o.out);
    const handle = client.workflow.getHandle(rolloutWorkflowId(rolloutId));
    let final: RolloutStatusView | undefined;
    while (!final) {
      const view = await handle.query(statusQuery).catch(() => undefined);
      if (view) {
        const boots = await Promise.all(
          nodeIds.map(
            async (id, i) => `  ${id} boots: ${(await fleet!.boots(i)).join(' → ') || '(starting)'}`,
          ),
        );
        printer.show(`${renderStatus(view)}\n${boots.join('\n')}`);
        if (isFinal(view.status)) final = view;
      }
      if (!final) await new Promise((r) => setTimeout(r, 1000));
    }
    printer.done();
    say('');
    say(
      `rollout ${rolloutId} ended ${final.status}: ${final.counts.upgraded} upgraded, ${final.counts.failed} failed`,
    );
    say(`Temporal UI: ${rolloutSearchUrl(ui, config.temporal.namespace, rolloutId)}`);
    say(`VM console logs: ${vmDir}`);
    return final;
  } finally {
    await fleet?.stop();
    say('powered the VMs off');
    await group.stopAll();
    await client.connection.close().catch(() => undefined);
    await nc.drain().catch(() => undefined);
    if (o.exit) {
      await stackDown(o.stackDir, o.logger);
      say('stopped the local stack (--exit)');
    } else {
      say(`the local stack keeps running for exploration; stop it with 'slotflow stack down'`);
    }
  }
}
