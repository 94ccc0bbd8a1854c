import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createMemoryNonceStore, trustKeys, verifyCommand, type SigningKey } from '../../signing/index.ts';
import { signPlan, verifyPlan } from '../../signing/plan.ts';
import { COMMANDS_TOPIC, type SlotflowPeer } from '../../p2p/index.ts';
import type { SignedCommand, SignedPlan } from '../../schema/index.ts';
import { cleanupDirs, controlPlaneKey, startMesh, stopAll, until, upgradeCommand } from './helpers.ts';

// Sixteen peers, all also connected to node-1: far more than gossipsub's IP-colocation threshold
// (10) share one address, which once got the hub to graylist every peer and hear nothing.
const N = 16;
let key: SigningKey;
let rogue: SigningKey;
let peers: SlotflowPeer[];
const received = new Map<string, SignedCommand[]>();
const plans = new Map<string, SignedPlan[]>();

before(async () => {
  key = await controlPlaneKey();
  rogue = await controlPlaneKey();
  peers = await startMesh(
    N,
    key,
    (i) => ({
      onCommand: (signed) => {
        const id = `node-${i + 1}`;
        received.set(id, [...(received.get(id) ?? []), signed]);
      },
      onPlan: (signed) => {
        const id = `node-${i + 1}`;
        plans.set(id, [...(plans.get(id) ?? []), signed]);
      },
    }),
    2,
    true,
  );
});

after(async () => {
  await stopAll(peers ?? []);
  await cleanupDirs();
});

test('gossip - a signed command reaches its node through the mesh and passes the full agent check', async () => {
  const commands = peers.map((p) => upgradeCommand(key, p.nodeId));
  // One peer at the edge (as if it alone still reached NATS) gossips everybody's commands.
  const origin = peers[N - 1]!;
  const others = peers.filter((p) => p !== origin);
  for (const c of commands) await origin.commands.publishCommand(c);
  await until(
    () => others.every((p) => (received.get(p.nodeId) ?? []).length === 1),
    10_000,
    'commands on every peer',
  );
  for (const p of others) {
    const [signed] = received.get(p.nodeId)!;
    assert.equal(signed!.command.nodeId, p.nodeId);
    const verdict = await verifyCommand(signed, {
      trustedKeys: trustKeys(key.publicKey),
      nodeId: p.nodeId,
      nonces: createMemoryNonceStore(),
    });
    assert.equal(verdict.ok, true);
  }
  // Every peer holds every command for re-gossip, not only its own.
  await until(() => peers.every((p) => p.commands.held().commands.length === N), 5_000, 're-gossip stores');
});

test('gossip - a signed plan reaches every peer once', async () => {
  const now = Date.now();
  const signed = signPlan(
    {
      v: 1,
      rolloutId: 'r-plan',
      manifestDigest: `sha256:${'c'.repeat(64)}`,
      waves: [peers.slice(0, 2).map((p) => p.nodeId), peers.slice(2).map((p) => p.nodeId)],
      maxUnavailable: 2,
      failureThreshold: { type: 'count', count: 0 },
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 3_600_000).toISOString(),
      startsAt: new Date(now).toISOString(),
      leaseTtlMs: 60_000,
      startWindowMs: 60_000,
    },
    key,
  );
  assert.equal(verifyPlan(signed, { trustedKeys: trustKeys(key.publicKey) }).ok, true);
  await peers[3]!.commands.publishPlan(signed);
  await until(
    () => peers.filter((p) => p !== peers[3]).every((p) => (plans.get(p.nodeId) ?? []).length === 1),
    10_000,
    'the plan on every peer',
  );
  // A re-publish by another peer is a duplicate: nobody hands it up twice.
  await peers[5]!.commands.publishPlan(signed);
  await sleep(500);
  assert.ok(peers.every((p) => (plans.get(p.nodeId) ?? []).length <= 1));
});

test('gossip - forged and malformed commands are rejected by every peer and never delivered', async () => {
  const before = new Map(peers.map((p) => [p.nodeId, (received.get(p.nodeId) ?? []).length]));
  const rejectedBefore = new Map(peers.map((p) => [p.nodeId, p.commands.stats.rejected]));
  // The rogue is a peer at the edge of the mesh (so some peers are not its neighbours).
  const rogueIndex = N - 2;
  const roguePeer = peers[rogueIndex]!;
  const target = peers[1]!;
  const forged = upgradeCommand(rogue, target.nodeId, 'r-forged');
  // Same command, real key id, signature of the rogue key: must fail the signature check.
  const impostor = { ...forged, keyId: key.keyId };
  // Bypass the publisher's own check: the rogue peer publishes raw bytes on the topic.
  const pubsub = roguePeer.node.pubsub;
  const raw = (value: unknown) =>
    pubsub.publish(COMMANDS_TOPIC, new TextEncoder().encode(JSON.stringify(value)));
  await raw({ v: 1, type: 'command', signed: forged });
  await raw({ v: 1, type: 'command', signed: impostor });
  await pubsub.publish(COMMANDS_TOPIC, new Uint8Array([0xff, 0x00, 0x7b]));
  await raw({ v: 1, type: 'command', signed: { command: { type: 'Upgrade' } } });
  await raw({ hello: 'world' });
  await sleep(1_500);
  for (const p of peers)
    assert.equal(
      (received.get(p.nodeId) ?? []).length,
      before.get(p.nodeId),
      `${p.nodeId} got a bad command`,
    );
  // The rogue's direct neighbours rejected them (from the third on, gossipsub may drop the rest
  // unseen: the rogue is graylisted by then); nobody forwarded any of them further.
  const rogueId = roguePeer.node.libp2p.peerId;
  const neighbours = peers.filter((p) => p !== roguePeer && p.node.libp2p.getConnections(rogueId).length > 0);
  const others = peers.filter((p) => p !== roguePeer && !neighbours.includes(p));
  assert.ok(neighbours.length > 0 && others.length > 0);
  for (const p of neighbours) {
    const rejected = p.commands.stats.rejected - rejectedBefore.get(p.nodeId)!;
    assert.ok(rejected >= 3 && rejected <= 5, `${p.nodeId} rejected ${rejected}`);
  }
  for (const p of others) {
    assert.equal(
      p.commands.stats.rejected,
      rejectedBefore.get(p.nodeId),
      `${p.nodeId} was forwarded a bad message`,
    );
  }
  // Its neighbours now graylist the rogue (gossipsub score below -80).
  const scores = neighbours.map((p) =>
    (p.node.pubsub as unknown as { getScore(id: string): number }).getScore(rogueId.toString()),
  );
  assert.ok(
    scores.every((s) => s < -80),
    `scores of the rogue: ${scores.join(', ')}`,
  );
  // And the refusing side explains why.
  assert.ok(
    peers.some((p) =>
      /signature does not match|unknown key|malformed|JSON/.test(p.commands.stats.lastRejection ?? ''),
    ),
  );
});

test('gossip - the local publisher refuses to gossip what peers would drop', async () => {
  const forged = upgradeCommand(rogue, peers[1]!.nodeId, 'r-local');
  await assert.rejects(peers[0]!.commands.publishCommand(forged), /unknown key/);
});
