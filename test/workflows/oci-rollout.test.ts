// OCI references in rollouts on the real server, with a registry on loopback: nodes that install
// OCI images themselves (Kairos) are handed the reference pinned at start, nothing converted.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import type { PushedImage } from '../../activities/builders/oci-push.ts';
import { startRollout } from '../../cli/rollout-client.ts';
import { openEventLog, type EventLog } from '../../eventlog/index.ts';
import { COMMANDS_STREAM, SignedCommand, commandSubject } from '../../schema/index.ts';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.ts';
import { signingLog } from '../helpers/signed-events.ts';
import { upgradeEvents } from '../helpers/node-events.ts';
import { pushRootfs, writeBusyboxRootfs } from '../helpers/oci-images.ts';
import { rolloutEvents, waitForStatus } from '../helpers/rollouts.ts';
import { startRegistry, type RegistryHandle } from '../helpers/servers.ts';

let plane: ControlPlane;
let registry: RegistryHandle;
let log: EventLog;
let work: string;
let pushed: PushedImage;

before(async () => {
  [plane, registry] = await Promise.all([startControlPlane(), startRegistry()]);
  // Node events in these tests come from enrolled nodes, signed.
  log = signingLog(await openEventLog(plane.nc), plane.key);
  work = await mkdtemp(join(tmpdir(), 'slotflow-oci-wf-'));
  const rootfs = await writeBusyboxRootfs(join(work, 'rootfs'), '2.0.0');
  pushed = await pushRootfs(rootfs, `${registry.address}/test/kairos:2.0.0`);
});
after(async () => {
  await plane?.stop();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

test('oci rollout - Kairos nodes are handed the tag pinned at start; nothing is converted', async () => {
  await log.append({
    v: 1,
    id: 'kairos-1.registered',
    at: new Date().toISOString(),
    type: 'NodeRegistered',
    nodeId: 'kairos-1',
    labels: { site: 'kairos' },
    version: '1.0.0',
    activeSlot: 'a',
    agentVersion: 'simulated',
    installs: ['oci'],
  });
  const handle = await startRollout(plane.client, {
    id: 'r-kairos',
    image: { type: 'oci', reference: `${registry.address}/test/kairos:2.0.0` },
    version: '2.0.0',
    selector: 'site=kairos',
    waves: '100%',
  });
  const running = await waitForStatus(plane.client, 'r-kairos', (s) => s.imageDigest !== undefined);
  assert.equal(running.imageDigest, pushed.digest, 'the tag was pinned to the digest it named at start');

  const jsm = await jetstreamManager(plane.nc);
  let sent: SignedCommand | undefined;
  for (let i = 0; !sent && i < 100; i++) {
    const message = await jsm.streams
      .getMessage(COMMANDS_STREAM, { last_by_subj: commandSubject('kairos-1') })
      .catch(() => undefined);
    if (message) sent = SignedCommand.parse(message.json());
    else await new Promise((r) => setTimeout(r, 150));
  }
  assert.equal(sent?.command.type, 'Upgrade');
  assert.deepEqual(sent?.command.type === 'Upgrade' && sent.command.image, {
    type: 'oci',
    reference: `${registry.address}/test/kairos`,
    digest: pushed.digest,
    version: '2.0.0',
  });

  for (const event of upgradeEvents('r-kairos', 'kairos-1', { version: '2.0.0', digest: pushed.digest }))
    await log.append(event);
  assert.equal((await handle.result()).status, 'succeeded');
  const types = (await rolloutEvents(plane.nc, 'r-kairos')).map((e) => e.event.type);
  assert.ok(!types.includes('ImageConverted') && !types.includes('ImageBuilt'), types.join(', '));
});

test('oci rollout - a selector matching slot-image nodes and Kairos nodes is refused before any command', async () => {
  for (const [nodeId, installs] of [
    ['mixed-file', ['file']],
    ['mixed-kairos', ['oci']],
  ] as const) {
    await log.append({
      v: 1,
      id: `${nodeId}.registered`,
      at: new Date().toISOString(),
      type: 'NodeRegistered',
      nodeId,
      labels: { site: 'mixed' },
      version: '1.0.0',
      activeSlot: 'a',
      agentVersion: 'simulated',
      installs: [...installs],
    });
  }
  const handle = await startRollout(plane.client, {
    id: 'r-mixed',
    image: { type: 'oci', reference: pushed.reference },
    version: '2.0.0',
    selector: 'site=mixed',
  });
  const status = await waitForStatus(plane.client, 'r-mixed', (s) => s.status === 'failed');
  await assert.rejects(handle.result());
  assert.match(status.pauseReason ?? '', /nodes that pull OCI images themselves \(kairos: mixed-kairos\)/);
  const types = (await rolloutEvents(plane.nc, 'r-mixed')).map((e) => e.event.type);
  assert.deepEqual(types, ['RolloutStarted', 'RolloutCompleted']);
});
