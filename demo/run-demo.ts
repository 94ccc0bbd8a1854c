import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { openEventLog } from '../eventlog/index.ts';
import { catchUp, emptyProjection } from '../projection/index.ts';
import { loadConnectionConfig } from '../runtime/config.ts';
import { connectNats } from '../runtime/nats.ts';
import { connectTemporal } from '../runtime/temporal.ts';
import { initKeys } from '../signing/index.ts';
import { controlPlaneTrustedKeys, localAuthority, preauthorizeNode } from '../trust/index.ts';
import { stackDown } from '../stack/index.ts';
import { createStatusPrinter, isFinal, renderStatus } from '../cli/progress.ts';
import { startRollout } from '../cli/rollout-client.ts';
import { rolloutSearchUrl, workflowUrl } from '../cli/ui-url.ts';
import { rolloutWorkflowId, statusQuery, type RolloutStatusView } from '../workflows/definitions.ts';
import { ensureLocalStack } from './local-stack.ts';
import { createProcessGroup } from './processes.ts';
import { writeDemoRootfs } from './rootfs.ts';

export interface DemoOptions {
  nodes: number;
  /** Tear the local stack down at the end instead of leaving it for exploration. */
  exit: boolean;
  /** One node fails its health check: shows fallback and the failure policy. */
  injectFailure: boolean;
  home: string;
  stackDir: string;
  logger: Logger;
  out: NodeJS.WriteStream;
}

const say = (out: NodeJS.WriteStream, line: string) => out.write(`${line}\n`);

/**
 * The whole system on the embedded stack: Temporal + NATS, a worker, N agents with file slots and
 * simulated reboots, an image built from a generated rootfs, and a canary + waves rollout.
 * Returns the rollout's final status.
 */
export async function runDemo(o: DemoOptions): Promise<RolloutStatusView> {
  const { out } = o;
  // 1. the local stack (provisioned and started when it is not running)
  const {
    env,
    ui: base,
    workerEnv,
    nodeEnv,
  } = await ensureLocalStack(o.stackDir, o.home, (line) => say(out, line));

  // 2. keys, a worker and the agents
  const demoDir = join(o.home, 'demo');
  await rm(join(demoDir, 'agents'), { recursive: true, force: true });
  await mkdir(join(demoDir, 'logs'), { recursive: true });
  const keys = await initKeys(o.home);
  const trusted = join(o.home, 'keys');
  const group = createProcessGroup();
  const config = loadConnectionConfig({ ...process.env, ...env });
  const nc = await connectNats(config.nats, 'slotflow-demo');
  const client = await connectTemporal(config.temporal);
  let final: RolloutStatusView | undefined;
  try {
    group.start('worker', ['worker'], workerEnv, join(demoDir, 'logs', 'worker.log'));
    const failing = o.injectFailure ? Math.min(2, o.nodes - 1) : -1;
    const nodeIds = Array.from({ length: o.nodes }, (_, i) => `demo-${i + 1}`);
    const nodeEnvs = await Promise.all(nodeIds.map(nodeEnv));
    // Each demo run starts agents with fresh data dirs: pre-authorise their new keys.
    const log = await openEventLog(nc);
    const authority = await localAuthority(nc, log, o.home, 'demo');
    for (const nodeId of nodeIds) {
      await preauthorizeNode(authority, {
        nodeId,
        dataDir: join(demoDir, 'agents', nodeId),
        replaceKey: true,
      });
    }
    nodeIds.forEach((nodeId, i) => {
      const args = [
        'agent',
        '--node-id',
        nodeId,
        '--data-dir',
        join(demoDir, 'agents', nodeId),
        '--labels',
        `site=demo,rack=r${(i % 2) + 1}`,
        '--slot-driver',
        'file',
        '--reboot',
        'simulate',
        '--trusted-keys',
        trusted,
        '--initial-version',
        '1.0.0',
        '--heartbeat-interval',
        '5s',
      ];
      if (i === failing) args.push('--health-check', 'app-ready=false');
      group.start(nodeId, args, nodeEnvs[i]!, join(demoDir, 'logs', `${nodeId}.log`));
    });
    say(
      out,
      `started a worker and ${o.nodes} agents (file slots, simulated reboots; logs in ${join(demoDir, 'logs')}); key ${keys.keyId}`,
    );
    if (failing >= 0)
      say(out, `injected failure: ${nodeIds[failing]} will fail its health check after the upgrade`);

    // 3. wait until every agent has registered
    const trust = { trustedKeys: await controlPlaneTrustedKeys(o.home, { retired: true }) };
    const deadline = Date.now() + 120_000;
    for (;;) {
      const projection = await catchUp(emptyProjection(), log, trust);
      const ready = nodeIds.filter((id) => projection.nodes.get(id)?.version === '1.0.0').length;
      if (ready === o.nodes) break;
      if (Date.now() > deadline)
        throw new Error(
          `only ${ready} of ${o.nodes} agents registered within 2 minutes; see ${join(demoDir, 'logs')}`,
        );
      await new Promise((r) => setTimeout(r, 500));
    }
    say(out, `all ${o.nodes} nodes registered on version 1.0.0`);

    // 4. an image from a generated rootfs, rolled out as canary + waves
    const rootfs = await writeDemoRootfs(await mkdtemp(join(tmpdir(), 'slotflow-demo-rootfs-')), '2.0.0');
    const rolloutId = `demo-${new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)}`;
    await startRollout(client, {
      id: rolloutId,
      image: { type: 'rootfs', path: rootfs },
      version: '2.0.0',
      selector: 'site=demo',
      waves: '1,25%,100%',
      maxUnavailable: 2,
      failureThreshold: '0',
      onFailure: 'rollback',
      timeouts: { accept: '1m', write: '5m', reboot: '5m', health: '2m' },
    });
    const ui = rolloutSearchUrl(base, config.temporal.namespace, rolloutId);
    say(
      out,
      `rollout ${rolloutId}: 2.0.0 to ${o.nodes} nodes in waves 1,25%,100%, 2 at a time, rollback on any failure`,
    );
    const printer = createStatusPrinter(out);
    const handle = client.workflow.getHandle(rolloutWorkflowId(rolloutId));
    for (;;) {
      const view = await handle.query(statusQuery).catch(() => undefined);
      if (view) {
        printer.show(renderStatus(view));
        if (isFinal(view.status)) {
          final = view;
          break;
        }
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    printer.done();
    const { runId } = await handle.describe();
    say(out, '');
    say(
      out,
      `rollout ${rolloutId} ended ${final.status}: ${final.counts.upgraded} upgraded, ${final.counts.failed} failed`,
    );
    say(out, `Temporal UI, the rollout and its node workflows: ${ui}`);
    say(
      out,
      `the rollout's own history: ${workflowUrl(base, config.temporal.namespace, rolloutWorkflowId(rolloutId), runId)}`,
    );
    say(out, `events: slotflow events --rollout ${rolloutId}    fleet: slotflow fleet`);
    await rm(rootfs, { recursive: true, force: true });
    return final;
  } finally {
    await group.stopAll();
    await client.connection.close().catch(() => undefined);
    await nc.drain().catch(() => undefined);
    if (o.exit) {
      await stackDown(o.stackDir, o.logger);
      say(out, 'stopped the local stack (--exit)');
    } else {
      say(out, `the local stack keeps running for exploration; stop it with 'slotflow stack down'`);
    }
  }
}
