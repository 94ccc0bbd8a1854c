// Node trust where events enter the control plane, against a real nats-server and Temporal dev
// server with the worker (event bridge and projector) in this process: forged, unsigned and
// replayed node events never reach a node workflow or the projection and are listed by
// `slotflow events --rejected`; a revocation refuses a node's events from that point on; an
// agent that is not enrolled waits as pending, gets no command, and upgrades once accepted.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startRollout } from '../../cli/rollout-client.ts';
import { openEventLog, type EventLog } from '../../eventlog/index.ts';
import {
  COMMANDS_STREAM,
  commandSubject,
  eventSubject,
  DomainEvent,
  type DomainEventInput,
  type RejectionRecord,
} from '../../schema/index.ts';
import { keysDir, signNodeEvent } from '../../signing/index.ts';
import { enrolSimulatedNode, newNodeIdentity, type SimulatedIdentity } from '../../simulator/identity.ts';
import { commandIdFor } from '../../workflows/definitions.ts';
import { loadNodeIdentity } from '../../node-agent/event-signer.ts';
import { AgentProcess } from '../agent/agent-process.ts';
import { runCli } from '../helpers/cli.ts';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.ts';
import { startNodeWorkflow, waitForPhase } from '../helpers/node-workflows.ts';
import { publishImage, waitForStatus } from '../helpers/rollouts.ts';

let plane: ControlPlane;
let log: EventLog;
let root: string;

before(async () => {
  plane = await startControlPlane();
  log = await openEventLog(plane.nc);
  root = await mkdtemp(join(tmpdir(), 'slotflow-trust-'));
});
after(async () => {
  await plane?.stop();
  await rm(root, { recursive: true, force: true });
});

const cli = (...args: string[]) => runCli(args, plane.env);

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

async function rejected(nodeId: string): Promise<RejectionRecord[]> {
  const r = await cli('events', '--rejected', '--node', nodeId, '--json');
  assert.equal(r.code, 0, r.stderr);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as RejectionRecord);
}

function step(
  nodeId: string,
  rolloutId: string,
  type: string,
  body: Record<string, unknown>,
): DomainEventInput {
  return {
    v: 1,
    id: `${nodeId}-${type}-${Date.now()}`,
    at: new Date().toISOString(),
    type,
    nodeId,
    rolloutId,
    commandId: commandIdFor(rolloutId, nodeId, 'upgrade'),
    ...body,
  } as DomainEventInput;
}

/** Publishes raw on the node's own subject, under its own Nats-Msg-Id (as any NATS client could). */
async function inject(event: DomainEventInput, msgId: string): Promise<void> {
  await log.js.publish(eventSubject(DomainEvent.parse(event)), JSON.stringify(event), { msgID: msgId });
}

async function signalsOf(handle: Awaited<ReturnType<typeof startNodeWorkflow>>): Promise<string[]> {
  const history = await handle.fetchHistory();
  return (history.events ?? [])
    .map((e) => e.workflowExecutionSignaledEventAttributes?.signalName)
    .filter((n): n is string => typeof n === 'string');
}

test('trust - forged, unsigned and replayed node events never reach the node workflow nor the projection; a revoked node is refused from then on', async () => {
  const nodeId = 'tr-1';
  const rolloutId = 'r-trust';
  const node: SimulatedIdentity = await enrolSimulatedNode(log, plane.key, nodeId);
  await log.append(
    node.sign({
      v: 1,
      id: `${nodeId}-registered`,
      at: new Date().toISOString(),
      type: 'NodeRegistered',
      nodeId,
      labels: { site: 'trust' },
      version: '1.0.0',
      activeSlot: 'a',
      agentVersion: 'test',
    }),
  );
  const digest = `sha256:${'2'.repeat(64)}`;
  const handle = await startNodeWorkflow(plane.client, {
    rolloutId,
    nodeId,
    digest,
    timeouts: { accept: 600_000, write: 600_000, reboot: 600_000, health: 600_000 },
  });

  // The node's own signed answer reaches the workflow.
  const accepted = node.sign(step(nodeId, rolloutId, 'UpgradeCommandAccepted', { command: 'Upgrade' }));
  await log.append(accepted);
  await waitForPhase(handle, (p) => p.startsWith('fetching'));

  // Replayed: the same signed event under a new Nats-Msg-Id. Unsigned. Forged: a valid shape
  // signed by a key the node was not enrolled with.
  await inject(accepted, `${accepted.id}-again`);
  await inject(
    step(nodeId, rolloutId, 'ArtifactFetched', { digest, bytes: 1, source: 'nats', seq: 500 }),
    'unsigned-1',
  );
  const forged = signNodeEvent(
    DomainEvent.parse({
      ...step(nodeId, rolloutId, 'UpgradeCommitted', { slot: 'b', version: '2.0.0', digest }),
      seq: 501,
    }) as never,
    newNodeIdentity(),
  );
  await inject(forged, 'forged-1');
  const records = await until('three rejection records', 30_000, async () => {
    const r = await rejected(nodeId);
    return r.length >= 3 ? r : undefined;
  });
  assert.deepEqual(records.map((r) => r.reason).sort(), ['replayed', 'unsigned', 'wrong-key']);
  assert.ok(records.every((r) => r.nodeId === nodeId && r.message.length > 0));

  // A later good event goes through; the refused ones never did.
  await log.append(
    node.sign(step(nodeId, rolloutId, 'ArtifactFetched', { digest, bytes: 1, source: 'nats' })),
  );
  await until('the good ArtifactFetched signalled', 30_000, async () =>
    (await signalsOf(handle)).includes('ArtifactFetched') ? true : undefined,
  );
  assert.deepEqual(await signalsOf(handle), ['UpgradeCommandAccepted', 'ArtifactFetched']);
  const last = await log.lastSeq();
  await plane.worker!.projector.waitForSeq(last);
  const view = plane.worker!.projector.current().nodes.get(nodeId);
  assert.equal(view?.version, '1.0.0', 'the forged UpgradeCommitted did not reach the projection');
  assert.equal(view?.rollout?.phase, 'fetched');

  // Revoked: the node's next event, correctly signed and numbered, is refused.
  const revoke = await cli('node', 'revoke', nodeId, '--json');
  assert.equal(revoke.code, 0, revoke.stderr);
  await log.append(node.sign(step(nodeId, rolloutId, 'SlotWritten', { slot: 'b', digest })));
  const afterRevoke = await until('the revoked node refused', 30_000, async () => {
    const r = await rejected(nodeId);
    return r.some((x) => x.reason === 'revoked') ? r : undefined;
  });
  assert.equal(afterRevoke.find((r) => r.reason === 'revoked')?.type, 'SlotWritten');
  await plane.worker!.projector.waitForSeq(await log.lastSeq());
  assert.equal(plane.worker!.projector.current().nodes.get(nodeId)?.rollout?.phase, 'fetched');
  assert.deepEqual(await signalsOf(handle), ['UpgradeCommandAccepted', 'ArtifactFetched']);
  assert.equal((await cli('node', 'revoke', nodeId)).code, 1, 'revoking twice fails');

  // Rebuilding from sequence 1 gives the live projection, refusals included.
  const live = plane.worker!.projector.current();
  const rebuilt = await plane.worker!.projector.rebuild();
  assert.deepEqual(rebuilt.nodes.get(nodeId), live.nodes.get(nodeId));
  await handle.terminate('test done');
});

test('trust - an agent that is not enrolled waits as pending and gets no command until accepted, then upgrades', async () => {
  const nodeId = 'pend-1';
  const dataDir = join(root, nodeId);
  const agent = await AgentProcess.start(
    [
      ...['--node-id', nodeId, '--data-dir', dataDir, '--trusted-keys', keysDir(plane.home)],
      ...['--labels', 'site=pend', '--initial-version', '1.0.0', '--heartbeat-interval', '1s'],
    ],
    { ...process.env, ...plane.env, NATS_URL: plane.stack.nats.url, NODE_COMPILE_CACHE: join(root, 'cc') },
    join(root, `${nodeId}.log`),
  );
  try {
    const pending = await until('the agent listed as pending', 60_000, async () => {
      const r = await cli('node', 'pending', '--json');
      const nodes = (
        JSON.parse(r.stdout || '{"nodes":[]}') as { nodes: { nodeId: string; status: string }[] }
      ).nodes;
      return nodes.find((n) => n.nodeId === nodeId);
    });
    assert.equal(pending.status, 'pending');
    // The agent holds its events until enrolled; one it signed anyway (its own key) is refused.
    const own = await loadNodeIdentity(dataDir);
    await inject(
      signNodeEvent(
        DomainEvent.parse({
          v: 1,
          id: `${nodeId}-early-registration`,
          at: new Date().toISOString(),
          type: 'NodeRegistered',
          nodeId,
          labels: { site: 'pend' },
          version: '1.0.0',
          activeSlot: 'a',
          agentVersion: 'test',
          seq: 1_000,
        }) as never,
        own,
      ),
      `${nodeId}-early-registration`,
    );
    await until('the early registration refused', 30_000, async () =>
      (await rejected(nodeId)).some((r) => r.reason === 'pending') ? true : undefined,
    );

    const digest = await publishImage(plane.client, '2.0.0');
    const timeouts = { accept: '1m', write: '1m', reboot: '1m', health: '1m' };
    const first = await startRollout(plane.client, {
      id: 'r-pend-1',
      image: { type: 'published', digest },
      version: '2.0.0',
      selector: 'site=pend',
      waves: '100%',
      timeouts,
    });
    await first.result().catch(() => undefined);
    const commands = await log.jsm.streams.info(COMMANDS_STREAM, { subjects_filter: commandSubject(nodeId) });
    assert.equal(commands.state.subjects?.[commandSubject(nodeId)] ?? 0, 0, 'no command for a pending node');

    const accept = await cli('node', 'accept', nodeId, '--json');
    assert.equal(accept.code, 0, accept.stderr);
    assert.equal((await cli('node', 'accept', nodeId)).code, 1, 'accepting twice fails: it is not pending');
    await until('the certificate stored by the agent', 60_000, async () =>
      access(join(dataDir, 'enrolment.json')).then(
        () => true,
        () => undefined,
      ),
    );
    await until('the node in the fleet', 60_000, async () => {
      const r = await cli('fleet', '--json');
      const nodes = (JSON.parse(r.stdout || '{"nodes":[]}') as { nodes: { nodeId: string }[] }).nodes;
      return nodes.some((n) => n.nodeId === nodeId) ? true : undefined;
    });
    await startRollout(plane.client, {
      id: 'r-pend-2',
      image: { type: 'published', digest },
      version: '2.0.0',
      selector: 'site=pend',
      waves: '100%',
      timeouts,
    });
    const done = await waitForStatus(
      plane.client,
      'r-pend-2',
      (s) => ['succeeded', 'failed', 'aborted', 'rolled-back'].includes(s.status),
      180_000,
    );
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    assert.equal(done.counts.upgraded, 1);
  } finally {
    await agent.stop(5_000).catch(() => agent.powerOff());
  }
});

test('trust - node enroll certifies a key made on the node; node reject refuses a pending request; bad input exits 2', async () => {
  const made = newNodeIdentity();
  const enrolled = await cli('node', 'enroll', '--node-id', 'en-1', '--public-key', made.publicKey, '--json');
  assert.equal(enrolled.code, 0, enrolled.stderr);
  const { certificate } = JSON.parse(enrolled.stdout) as { certificate: { keyId: string; peerId: string } };
  assert.equal(certificate.keyId, made.keyId);
  assert.equal(certificate.peerId, made.peerId);
  assert.equal((await cli('node', 'enroll', '--node-id', 'en-1', '--public-key', 'not-a-key')).code, 2);
  const other = newNodeIdentity();
  const clash = await cli('node', 'enroll', '--node-id', 'en-1', '--public-key', other.publicKey);
  assert.equal(clash.code, 1, 'a second key for an enrolled node is refused');
  assert.match(clash.stderr, /revoke/);

  // A request signed by the key it presents makes the node pending; reject refuses it.
  const asker = newNodeIdentity();
  const request = signNodeEvent(
    DomainEvent.parse({
      v: 1,
      id: 'rq-1-request',
      at: new Date().toISOString(),
      type: 'NodeEnrollmentRequested',
      nodeId: 'rq-1',
      publicKey: asker.publicKey,
      labels: { site: 'rq' },
      seq: 1,
    }) as never,
    asker,
  );
  await inject(request, 'rq-1-request');
  await until('rq-1 pending', 30_000, async () => {
    const r = await cli('node', 'pending', '--json');
    return (JSON.parse(r.stdout || '{"nodes":[]}') as { nodes: { nodeId: string }[] }).nodes.some(
      (n) => n.nodeId === 'rq-1',
    )
      ? true
      : undefined;
  });
  const reject = await cli('node', 'reject', 'rq-1', '--reason', 'unknown machine', '--json');
  assert.equal(reject.code, 0, reject.stderr);
  const all = JSON.parse((await cli('node', 'pending', '--all', '--json')).stdout) as {
    nodes: { nodeId: string; status: string }[];
  };
  assert.equal(all.nodes.find((n) => n.nodeId === 'rq-1')?.status, 'rejected');
  assert.equal((await cli('node', 'accept', 'rq-1')).code, 1, 'a rejected request cannot be accepted');
  assert.equal((await cli('node', 'accept', 'bad.id')).code, 2);
});
