import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/nats-core';
import { openEventLog, type EventLog } from '../../eventlog/index.ts';
import { nodeEventsFilters, nodeInboxPrefix, type NodeEvent } from '../../schema/index.ts';
import type { SigningKey } from '../../signing/index.ts';
import { natsRelayPublisher, type SlotflowPeer } from '../../p2p/index.ts';
import { issueNodeCredentials } from '../../stack/index.ts';
import { connectNats } from '../../runtime/nats.ts';
import { startNats, type NatsHandle } from '../helpers/servers.ts';
import { cleanupDirs, controlPlaneKey, startMesh, stopAll, until } from './helpers.ts';

let nats: NatsHandle;
let key: SigningKey;
let peers: SlotflowPeer[];
const connections: NatsConnection[] = [];
let reader: EventLog;

/** A node's own connection, as its agent makes it: its per-node credentials over TLS. */
async function connectAsNode(nodeId: string): Promise<NatsConnection> {
  const security = nats.security!;
  return connectNats(
    {
      servers: [nats.url],
      credsFile: await issueNodeCredentials(security.authDir, nodeId),
      tls: { ca: security.ca },
    },
    nodeId,
    { maxReconnectAttempts: -1, reconnectTimeWait: 250, inboxPrefix: nodeInboxPrefix(nodeId) },
  );
}

before(async () => {
  // As `stack up` runs it: TLS, and each node may publish only its own events and its own relays.
  nats = await startNats({ secure: true });
  key = await controlPlaneKey();
  reader = await openEventLog(await nats.connect());
  // Six peers; four of them reach NATS and relay, two (the authors below) do not.
  peers = await startMesh(6, key);
  for (const p of peers.slice(2)) {
    const nc = await connectAsNode(p.nodeId);
    connections.push(nc);
    p.relay.setPublisher(natsRelayPublisher(nc, p.nodeId));
  }
});

after(async () => {
  await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
  await stopAll(peers ?? []);
  await nats?.stop();
  await cleanupDirs();
});

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

async function storedIds(nodeId: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const e of reader.replay({ filters: nodeEventsFilters(nodeId) })) ids.push(e.event.id);
  return ids;
}

test('event relay - events of a node without NATS land in JetStream exactly once although four peers relay them', async () => {
  const author = peers[0]!;
  const events = Array.from({ length: 20 }, () => heartbeat(author.nodeId));
  for (const e of events) await author.events.publish(e);
  await until(async () => (await storedIds(author.nodeId)).length >= events.length, 10_000, 'relayed events');
  // Give every relay time to append its copy too.
  await until(() => peers.slice(2).every((p) => p.relay.pending() === 0), 10_000, 'relays drained');
  await sleep(300);
  const ids = await storedIds(author.nodeId);
  assert.deepEqual([...ids].sort(), events.map((e) => e.id).sort());
  const relayers = new Set(peers.slice(2).map((p) => p.nodeId));
  for await (const { subject } of reader.replay({ filters: nodeEventsFilters(author.nodeId) })) {
    const [, , kind, of, by] = subject.split('.');
    assert.ok(kind === 'relay' && of === author.nodeId && relayers.has(by!), `stored as a relay: ${subject}`);
  }
  const appended = peers.reduce((n, p) => n + p.relay.stats.appended, 0);
  const duplicates = peers.reduce((n, p) => n + p.relay.stats.duplicates, 0);
  assert.equal(appended, events.length, 'one relay stored each event');
  assert.equal(duplicates, events.length * 3, 'the other three relays were de-duplicated by the stream');
  assert.equal(
    peers.reduce((n, p) => n + p.relay.stats.failures, 0),
    0,
    'no relay was refused by the server',
  );
});

test('event relay - events heard while NATS is down are relayed once it is back', async () => {
  const author = peers[1]!;
  await nats.kill();
  const events = Array.from({ length: 5 }, () => heartbeat(author.nodeId));
  for (const e of events) await author.events.publish(e);
  await until(
    () => peers.slice(2).every((p) => p.relay.pending() >= 5),
    5_000,
    'events queued on the relays',
  );
  await nats.restart();
  await until(async () => (await storedIds(author.nodeId)).length >= 5, 20_000, 'events after the restart');
  await until(() => peers.slice(2).every((p) => p.relay.pending() === 0), 20_000, 'relays drained');
  const ids = await storedIds(author.nodeId);
  assert.deepEqual([...ids].sort(), events.map((e) => e.id).sort());
});

test('event relay - an event a peer publishes for another node is rejected', async () => {
  const liar = peers[1]!;
  const victim = peers[0]!.nodeId;
  const rejectedBefore = peers.reduce((n, p) => n + p.events.stats.rejected, 0);
  const lie = heartbeat(victim);
  await liar.node.pubsub.publish(
    'slotflow/events/1',
    new TextEncoder().encode(JSON.stringify({ v: 1, event: lie })),
  );
  await until(
    () => peers.reduce((n, p) => n + p.events.stats.rejected, 0) > rejectedBefore,
    5_000,
    'the impostor event to be rejected',
  );
  await sleep(500);
  assert.ok(!(await storedIds(victim)).includes(lie.id));
});
