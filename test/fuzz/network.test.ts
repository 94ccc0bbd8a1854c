// Fuzz: what peers send over the mesh. Two real libp2p peers on loopback, enrolled by the test's
// control-plane key. Gossip: every topic's real validator (the one gossipsub calls on the
// receiving node) gets mutated and random messages authored by the other, enrolled peer; it must
// settle each with accept/reject/ignore (never throw), accept only well-formed content, and say
// why it rejected. The chunk protocol: real `/slotflow/chunk/1` streams carry raw bytes and
// mutated length-prefixed requests to the real server; it must answer an error frame naming the
// problem, or missing/ok, and go on serving. After each surface's bad inputs a good message or
// request still goes through end to end.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { TopicValidatorResult, type Message } from '@libp2p/gossipsub';
import { peerIdFromString } from '@libp2p/peer-id';
import { lpStream } from '@libp2p/utils';
import fc from 'fast-check';
import { createMemoryChunkStore, type SlotflowPeer } from '../../p2p/index.ts';
import { requestChunk } from '../../p2p/chunks/protocol.ts';
import {
  CHUNK_PROTOCOL,
  CHUNKS_TOPIC,
  ENROLMENT_PROTOCOL,
  COMMANDS_TOPIC,
  EVENTS_TOPIC,
  LEASE_TOPIC,
} from '../../p2p/topics.ts';
import {
  ChunkResponse,
  EnrolmentResponse,
  canonicalJson,
  type LeaseReport,
  type NodeEvent,
} from '../../schema/index.ts';
import { trustKeys, type SigningKey } from '../../signing/index.ts';
import { createCertificateBook } from '../../p2p/enrolment/certificates.ts';
import type { Stream } from '@libp2p/interface';
import {
  cleanupDirs,
  controlPlaneKey,
  startPeer,
  stopAll,
  testPlan,
  until,
  upgradeCommand,
  waitForMesh,
} from '../p2p/helpers.ts';
import { assertNamesField, fuzz, mangledBytes, mutationsOf, randomJson, type Mutation } from './harness.ts';

let key: SigningKey;
let a: SlotflowPeer;
let b: SlotflowPeer;
const chunk = randomBytes(4096);
const chunkDigest = `sha256:${(await import('node:crypto')).createHash('sha256').update(chunk).digest('hex')}`;

before(async () => {
  key = await controlPlaneKey();
  const store = createMemoryChunkStore();
  await store.put(chunkDigest, chunk);
  a = await startPeer('node-1', key);
  b = await startPeer('node-2', key, { bootstrap: [a.multiaddrs()[0]!], chunkStore: store });
  await waitForMesh([a, b]);
});
after(async () => {
  await stopAll([a, b].filter(Boolean));
  await cleanupDirs();
});

const now = () => new Date().toISOString();
function heartbeat(nodeId: string): NodeEvent {
  return {
    v: 1,
    id: `hb-${nodeId}-${Math.random().toString(36).slice(2)}`,
    at: now(),
    type: 'NodeHeartbeat',
    nodeId,
    version: '1.0.0',
    activeSlot: 'a',
    state: 'idle',
  } as NodeEvent;
}

let seq = 1n;
/** A gossipsub message as b's validator receives it: authored (and signed) by a. */
function messageFrom(author: SlotflowPeer, topic: string, data: Uint8Array): Message {
  const from = peerIdFromString(author.peerId);
  return {
    type: 'signed',
    from,
    topic,
    data,
    sequenceNumber: seq++,
    signature: new Uint8Array(64),
    key: from.publicKey!,
  } as Message;
}

async function validate(topic: string, data: Uint8Array): Promise<TopicValidatorResult> {
  const validator = b.node.pubsub.topicValidators.get(topic);
  assert.ok(validator, `no validator on ${topic}`);
  return validator(peerIdFromString(a.peerId), messageFrom(a, topic, data));
}

/** Mutated, random and mangled bodies of a valid gossip message. */
function bodies(
  valid: unknown,
): fc.Arbitrary<{ data: Uint8Array; mutations: readonly Mutation[]; json: boolean }> {
  const encode = (v: unknown) => new TextEncoder().encode(JSON.stringify(v) ?? '');
  return fc.oneof(
    {
      weight: 6,
      arbitrary: mutationsOf(valid).map((m) => ({
        data: encode(m.value),
        mutations: m.mutations,
        json: true,
      })),
    },
    { weight: 1, arbitrary: randomJson.map((v) => ({ data: encode(v), mutations: [], json: true })) },
    { weight: 2, arbitrary: mangledBytes(valid).map((data) => ({ data, mutations: [], json: false })) },
  );
}

async function fuzzTopic(surface: string, topic: string, valid: unknown): Promise<void> {
  const stats = () =>
    ({
      [COMMANDS_TOPIC]: b.commands.stats,
      [EVENTS_TOPIC]: b.events.stats,
      [LEASE_TOPIC]: b.lease.stats,
      [CHUNKS_TOPIC]: b.chunks.announcements,
    })[topic]!;
  await fuzz(surface, bodies(valid), async ({ data, mutations, json }) => {
    const before = stats().rejected;
    const verdict = await validate(topic, data);
    assert.ok(
      [TopicValidatorResult.Accept, TopicValidatorResult.Reject, TopicValidatorResult.Ignore].includes(
        verdict,
      ),
      `unexpected verdict ${verdict}`,
    );
    if (verdict === TopicValidatorResult.Reject) {
      assert.equal(stats().rejected, before + 1);
      const reason = stats().lastRejection ?? '';
      assert.ok(reason.length > 0, 'a rejection says why');
      if (json && /^malformed/.test(reason)) assertNamesField(reason, mutations, surface);
    }
  });
}

test('fuzz - command gossip: the validator settles every message, a good one still arrives', async () => {
  const command = upgradeCommand(key, 'node-2', 'r-fuzz');
  const plan = testPlan(key, 'r-fuzz-plan', [['node-1', 'node-2']]);
  await fuzzTopic('gossip-commands', COMMANDS_TOPIC, { v: 1, type: 'command', signed: command });
  await fuzzTopic('gossip-plans', COMMANDS_TOPIC, { v: 1, type: 'plan', signed: plan });
  const fresh = upgradeCommand(key, 'node-2', 'r-fuzz-after');
  await a.commands.publishCommand(fresh);
  await until(
    () => b.commands.held().commands.some((c) => c.signature === fresh.signature),
    15_000,
    'a good command after the fuzzed ones',
  );
});

test('fuzz - event gossip: the validator settles every message, a good one still arrives', async () => {
  await fuzzTopic('gossip-events', EVENTS_TOPIC, { v: 1, event: heartbeat('node-1') });
  const got: string[] = [];
  const off = b.events.onEvent((e) => void got.push(e.id));
  try {
    const good = heartbeat('node-1');
    await a.events.publish(good);
    await until(() => got.includes(good.id), 15_000, 'a good event after the fuzzed ones');
  } finally {
    off();
  }
});

test('fuzz - lease reports: the validator settles every message, a good one still arrives', async () => {
  const report: LeaseReport = {
    v: 1,
    type: 'done',
    rolloutId: 'r-1',
    nodeId: 'node-1',
    at: now(),
    outcome: 'succeeded',
  };
  await fuzzTopic('gossip-lease', LEASE_TOPIC, report);
  await a.lease.publish({ v: 1, type: 'started', rolloutId: 'r-after', nodeId: 'node-1', at: now() });
  await until(() => b.lease.reports('r-after').get('node-1')?.started !== undefined, 15_000, 'a good report');
});

test('fuzz - chunk announcements: the validator settles every message', async () => {
  const have = {
    v: 1,
    image: `sha256:${'c'.repeat(64)}`,
    chunkCount: 12,
    bitfield: Buffer.from([0xff, 0xf0]).toString('base64'),
    addrs: a.multiaddrs(),
  };
  await fuzzTopic('gossip-chunk-have', CHUNKS_TOPIC, have);
  assert.equal(
    await validate(CHUNKS_TOPIC, new TextEncoder().encode(JSON.stringify(have))),
    TopicValidatorResult.Accept,
  );
});

/** One exchange with b's chunk server: what it answered, or undefined when it closed without. */
async function exchange(
  send: (stream: Awaited<ReturnType<SlotflowPeer['node']['libp2p']['dialProtocol']>>) => Promise<void>,
) {
  const signal = AbortSignal.timeout(10_000);
  const stream = await a.node.libp2p.dialProtocol(peerIdFromString(b.peerId), CHUNK_PROTOCOL, { signal });
  const lp = lpStream(stream, { maxDataLength: 64 * 1024 * 1024 });
  try {
    await send(stream);
    await stream.close({ signal });
    const frame = await lp.read({ signal }).catch(() => undefined);
    if (!frame) return undefined;
    return ChunkResponse.parse(JSON.parse(new TextDecoder().decode(frame.subarray())));
  } finally {
    stream.abort(new Error('done'));
  }
}

test('fuzz - chunk protocol: the server answers every request on a real stream and keeps serving', async () => {
  const valid = { type: 'get', digest: chunkDigest, force: true };
  const encoder = new TextEncoder();
  const arb = fc.oneof(
    {
      weight: 5,
      arbitrary: mutationsOf(valid).map((m) => ({
        framed: true,
        bytes: encoder.encode(JSON.stringify(m.value) ?? ''),
        mutations: m.mutations,
      })),
    },
    {
      weight: 1,
      arbitrary: randomJson.map((v) => ({
        framed: true,
        bytes: encoder.encode(JSON.stringify(v)),
        mutations: [] as Mutation[],
      })),
    },
    {
      weight: 2,
      arbitrary: mangledBytes(valid).map((bytes) => ({ framed: true, bytes, mutations: [] as Mutation[] })),
    },
    // Not even a frame: random bytes straight on the stream (a bad length prefix, a cut-off frame).
    {
      weight: 2,
      arbitrary: fc
        .uint8Array({ maxLength: 96 })
        .map((bytes) => ({ framed: false, bytes, mutations: [] as Mutation[] })),
    },
  );
  // Streams are the slow part; the soak's count still applies, the CI sample is smaller.
  await fuzz('chunk-protocol', arb, async ({ framed, bytes, mutations }) => {
    const errorsBefore = b.chunks.server.stats.errors;
    const reply = await exchange(async (stream) => {
      if (framed) await lpStream(stream).write(bytes);
      else stream.send(bytes);
    });
    if (reply?.status === 'error') {
      assert.ok(reply.message.length > 0);
      assert.equal(b.chunks.server.stats.errors, errorsBefore + 1);
      if (/^chunk request: (?!expected)/.test(reply.message))
        assertNamesField(reply.message, mutations, 'chunk request');
    } else if (reply?.status === 'ok') {
      // Only a request for the chunk it holds is served.
    }
  });
  // Still serving: a proper request gets the chunk.
  const got = await requestChunk(
    a.node.libp2p,
    peerIdFromString(b.peerId),
    { type: 'get', digest: chunkDigest, force: true },
    AbortSignal.timeout(10_000),
  );
  assert.equal(got.status, 'ok');
  assert.deepEqual(got.status === 'ok' ? Buffer.from(got.bytes) : undefined, chunk);
  await sleep(0);
});

test('fuzz - enrolment certificates a peer presents: kept only when unchanged, never a throw', async () => {
  const cert = b.enrolment.own();
  assert.ok(cert);
  const arb = fc.oneof(
    { weight: 8, arbitrary: mutationsOf(cert) },
    { weight: 1, arbitrary: randomJson.map((value) => ({ value, mutations: [] as Mutation[] })) },
  );
  await fuzz('enrolment-certificates', arb, ({ value, mutations }) => {
    const book = createCertificateBook(trustKeys(key.publicKey));
    const verdict = book.offer(value, b.peerId);
    if (verdict.ok) {
      assert.equal(canonicalJson(verdict.certificate), canonicalJson(cert), 'a changed certificate was kept');
    } else {
      assert.ok(verdict.reason.length > 0);
      assert.equal(book.get(b.peerId), undefined, 'a refused certificate was kept');
      if (/^malformed|invalid/.test(verdict.reason))
        assertNamesField(verdict.reason, mutations, 'certificate');
      assert.ok(book.offer(cert, b.peerId).ok, 'the good certificate is refused after a bad one');
    }
  });
});

test('fuzz - enrolment protocol: bad requests on real streams, the server still answers a good one', async () => {
  const valid = { v: 1, peerId: b.peerId };
  const encoder = new TextEncoder();
  const arb = fc.oneof(
    {
      weight: 5,
      arbitrary: mutationsOf(valid).map((m) => ({
        framed: true,
        bytes: encoder.encode(JSON.stringify(m.value) ?? ''),
      })),
    },
    { weight: 2, arbitrary: mangledBytes(valid).map((bytes) => ({ framed: true, bytes })) },
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 96 }).map((bytes) => ({ framed: false, bytes })) },
  );
  const ask = async (send: (stream: Stream) => Promise<void>) => {
    const signal = AbortSignal.timeout(10_000);
    const stream = await a.node.libp2p.dialProtocol(peerIdFromString(b.peerId), ENROLMENT_PROTOCOL, {
      signal,
    });
    try {
      await send(stream);
      await stream.close({ signal }).catch(() => undefined);
      const frame = await lpStream(stream)
        .read({ signal })
        .catch(() => undefined);
      return frame
        ? EnrolmentResponse.parse(JSON.parse(new TextDecoder().decode(frame.subarray())))
        : undefined;
    } finally {
      stream.abort(new Error('done'));
    }
  };
  await fuzz('enrolment-protocol', arb, async ({ framed, bytes }) => {
    // An answer, when there is one, is a well-formed response; a bad request just ends the stream.
    await ask(async (stream) => {
      if (framed) await lpStream(stream).write(bytes);
      else stream.send(bytes);
    });
  });
  const good = await ask((stream) => lpStream(stream).write(encoder.encode(JSON.stringify(valid))));
  assert.equal(good?.certificate?.peerId, b.peerId, 'the server no longer answers a good request');
});
