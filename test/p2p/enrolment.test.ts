import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  EnrolmentError,
  ENROLMENT_FILE,
  LEASE_TOPIC,
  loadOwnEnrolment,
  type SlotflowPeer,
} from '../../p2p/index.ts';
import type { ChunkHave, LeaseReport, NodeEvent } from '../../schema/index.ts';
import { trustKeys, type SigningKey } from '../../signing/index.ts';
import {
  cleanupDirs,
  controlPlaneKey,
  enrolmentFor,
  startPeer,
  stopAll,
  tempDir,
  until,
  waitForMesh,
  writeEnrolment,
} from './helpers.ts';

let key: SigningKey;
const started: SlotflowPeer[] = [];

before(async () => {
  key = await controlPlaneKey();
});
after(async () => {
  await stopAll(started);
  await cleanupDirs();
});

async function peer(nodeId: string, options: Parameters<typeof startPeer>[2] = {}): Promise<SlotflowPeer> {
  const p = await startPeer(nodeId, key, options);
  started.push(p);
  return p;
}

function heartbeat(nodeId: string): NodeEvent {
  return {
    v: 1,
    id: `evt-${randomUUID()}`,
    at: new Date().toISOString(),
    type: 'NodeHeartbeat',
    nodeId,
    version: '1.0.0',
    activeSlot: 'a',
    state: 'idle',
  };
}

function registered(nodeId: string, peerId: string): NodeEvent {
  return {
    v: 1,
    id: `evt-${randomUUID()}`,
    at: new Date().toISOString(),
    type: 'NodeRegistered',
    nodeId,
    labels: {},
    version: '1.0.0',
    activeSlot: 'a',
    agentVersion: 'rogue',
    peerId,
  };
}

/** Every event and lease report a peer delivered to its listeners. */
function heard(p: SlotflowPeer): { events: NodeEvent[]; reports: LeaseReport[] } {
  const got = { events: [] as NodeEvent[], reports: [] as LeaseReport[] };
  p.events.onEvent((e) => void got.events.push(e));
  p.lease.onReport((r) => void got.reports.push(r));
  return got;
}

const rejections = (p: SlotflowPeer) =>
  p.events.stats.rejected + p.lease.stats.rejected + p.chunks.announcements.rejected;

test('enrolment - connected peers learn which node each other is from the control plane’s certificates', async () => {
  const a = await peer('en-a');
  const b = await peer('en-b', { bootstrap: [a.multiaddrs()[0]!] });
  await until(
    async () => (await a.enrolment.vouch(b.peerId)).type === 'enrolled',
    5_000,
    'a to verify the certificate of b',
  );
  assert.deepEqual(await a.enrolment.vouch(b.peerId), { type: 'enrolled', nodeId: 'en-b' });
  assert.deepEqual(await b.enrolment.vouch(a.peerId), { type: 'enrolled', nodeId: 'en-a' });
  assert.equal(a.enrolment.peerOf('en-b'), b.peerId);
});

test('enrolment - a certificate for another peer, or signed by a key the fleet does not trust, vouches for nothing', async () => {
  const a = await peer('en-c');
  const victimDir = await tempDir();
  const stolen = await enrolmentFor(victimDir, 'en-victim', key);
  const thief = await peer('en-victim', { enrolment: stolen, bootstrap: [a.multiaddrs()[0]!] });
  const rogueKey = await controlPlaneKey();
  const selfMadeDir = await tempDir();
  const selfMade = await peer('en-self', {
    dataDir: selfMadeDir,
    enrolment: await enrolmentFor(selfMadeDir, 'en-self', rogueKey),
    bootstrap: [a.multiaddrs()[0]!],
  });
  await until(() => a.node.libp2p.getPeers().length >= 2, 5_000, 'both to connect');

  const forThief = await a.enrolment.vouch(thief.peerId);
  assert.equal(forThief.type, 'refused');
  assert.match(forThief.type === 'refused' ? forThief.reason : '', /names peer .* presented for peer/);
  const forSelfMade = await a.enrolment.vouch(selfMade.peerId);
  assert.equal(forSelfMade.type, 'refused');
  assert.match(forSelfMade.type === 'refused' ? forSelfMade.reason : '', /unknown key/);
  assert.equal(a.enrolment.peerOf('en-victim'), undefined);
});

test('enrolment - an unenrolled peer’s events, lease reports, registration and chunk hints are rejected at the first hop and reach no one', async () => {
  // a — b — c, and the rogue (right mesh key, no certificate) connected to a only.
  const a = await peer('en-first-hop');
  const b = await peer('en-middle', { bootstrap: [a.multiaddrs()[0]!] });
  const c = await peer('en-far', { bootstrap: [b.multiaddrs()[0]!] });
  const rogue = await peer('en-rogue', { unenrolled: true, bootstrap: [a.multiaddrs()[0]!] });
  await waitForMesh([a, b, c, rogue]);
  const ears = [a, b, c].map(heard);

  await rogue.events.publish(heartbeat('en-rogue'));
  await rogue.events.publish(registered('en-rogue', rogue.peerId));
  await rogue.lease.publish({
    v: 1,
    type: 'started',
    rolloutId: 'r-enrol',
    nodeId: 'en-rogue',
    at: new Date().toISOString(),
  });
  const have: ChunkHave = {
    v: 1,
    image: `sha256:${'c'.repeat(64)}`,
    chunkCount: 8,
    bitfield: '/w==',
    addrs: rogue.multiaddrs(),
  };
  await rogue.node.pubsub.publish('slotflow/chunks/1', new TextEncoder().encode(JSON.stringify(have)));

  await until(() => rejections(a) >= 4, 5_000, 'the first hop to reject all four messages');
  assert.match(a.events.stats.lastRejection ?? '', /not an enrolled node: it presented no certificate/);
  assert.match(a.lease.stats.lastRejection ?? '', /not an enrolled node/);
  assert.ok(a.enrolment.stats.refused >= 1);
  assert.equal(a.chunks.directory.holders(have.image, 0).length, 0);
  // Rejected at a, so never forwarded: an honest event sent after them crosses the same path
  // and arrives, while none of the rogue's ever did.
  const marker = heartbeat('en-first-hop');
  await a.events.publish(marker);
  await until(() => ears[2]!.events.some((e) => e.id === marker.id), 5_000, 'the honest event at c');
  for (const [i, ear] of ears.entries()) {
    assert.deepEqual(
      ear.events.filter((e) => e.nodeId === 'en-rogue'),
      [],
      `peer ${i} delivered none of the rogue's events`,
    );
    assert.deepEqual(ear.reports, [], `peer ${i} delivered none of the rogue's lease reports`);
  }
  assert.equal(b.events.stats.rejected + c.events.stats.rejected, 0, 'nothing of the rogue’s got past a');
});

test('enrolment - an enrolled peer’s event or lease report for another node is rejected', async () => {
  const a = await peer('en-honest');
  const liar = await peer('en-liar', { bootstrap: [a.multiaddrs()[0]!] });
  await waitForMesh([a, liar]);
  const ear = heard(a);
  const lie = heartbeat('en-honest-victim');
  await liar.node.pubsub.publish(
    'slotflow/events/1',
    new TextEncoder().encode(JSON.stringify({ v: 1, event: lie })),
  );
  const report: LeaseReport = {
    v: 1,
    type: 'done',
    rolloutId: 'r-enrol',
    nodeId: 'en-honest-victim',
    at: new Date().toISOString(),
    outcome: 'succeeded',
  };
  await liar.node.pubsub.publish(LEASE_TOPIC, new TextEncoder().encode(JSON.stringify(report)));
  await until(() => a.events.stats.rejected > 0 && a.lease.stats.rejected > 0, 5_000, 'both lies rejected');
  assert.match(
    a.events.stats.lastRejection ?? '',
    /enrolled as node en-liar, published an event of node en-honest-victim/,
  );
  assert.match(
    a.lease.stats.lastRejection ?? '',
    /enrolled as node en-liar, reported for node en-honest-victim/,
  );
  // Its own events still count.
  const own = heartbeat('en-liar');
  await liar.events.publish(own);
  await until(() => ear.events.some((e) => e.id === own.id), 5_000, 'the liar’s own event');
  assert.deepEqual(
    ear.events.map((e) => e.id),
    [own.id],
  );
  assert.deepEqual(ear.reports, []);
});

test('enrolment - an author two hops away is vouched for through the peer that forwarded its message', async () => {
  const a = await peer('en-hop-a');
  const b = await peer('en-hop-b', { bootstrap: [a.multiaddrs()[0]!] });
  const c = await peer('en-hop-c', { bootstrap: [b.multiaddrs()[0]!] });
  await waitForMesh([a, b, c]);
  assert.equal(c.node.libp2p.getConnections(a.node.libp2p.peerId).length, 0, 'a and c are not connected');
  const ear = heard(c);
  const event = heartbeat('en-hop-a');
  await a.events.publish(event);
  await until(() => ear.events.some((e) => e.id === event.id), 5_000, 'a’s event at c');
  assert.equal(c.enrolment.peerOf('en-hop-a'), a.peerId);
});

test('enrolment - the node’s own certificate file is checked at load: absent is unenrolled, anything wrong is refused', async () => {
  const dataDir = await tempDir();
  const trustedKeys = trustKeys(key.publicKey);
  const cert = await enrolmentFor(dataDir, 'en-own', key);
  const load = (nodeId = 'en-own', peerId = cert.peerId) =>
    loadOwnEnrolment({ dataDir, nodeId, peerId, trustedKeys });
  assert.equal(await load(), undefined);
  await writeEnrolment(dataDir, 'en-own', key);
  assert.equal((await load())?.peerId, cert.peerId);
  await assert.rejects(
    load('en-other'),
    (err: unknown) => err instanceof EnrolmentError && /--node-id en-own/.test(err.message),
  );
  await assert.rejects(
    load('en-own', '12D3KooWSomeOtherPeer'),
    (err: unknown) => err instanceof EnrolmentError && /peer\.key/.test(err.message),
  );
  await assert.rejects(
    loadOwnEnrolment({
      dataDir,
      nodeId: 'en-own',
      peerId: cert.peerId,
      trustedKeys: trustKeys((await controlPlaneKey()).publicKey),
    }),
    (err: unknown) => err instanceof EnrolmentError && /unknown key/.test(err.message),
  );
  await writeFile(join(dataDir, ENROLMENT_FILE), JSON.stringify({ ...cert, nodeId: 'en-forged' }));
  await assert.rejects(
    loadOwnEnrolment({ dataDir, nodeId: 'en-forged', peerId: cert.peerId, trustedKeys }),
    (err: unknown) => err instanceof EnrolmentError && /issuer signature does not match/.test(err.message),
  );
});
