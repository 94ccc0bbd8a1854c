// nats-server as the enforcement point: TLS on every connection and operator-mode JWT auth, with
// per-node credentials that publish only the node's own events and read only its own commands.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as rawConnect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeliverPolicy, jetstream, jetstreamManager, AckPolicy } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { Objm } from '@nats-io/obj';
import { connect, credsAuthenticator } from '@nats-io/transport-node';
import { ensureStreams } from '../../eventlog/index.ts';
import { ensureConsumer } from '../../node-agent/command-inbox.ts';
import { createNatsSource } from '../../node-agent/artifact/index.ts';
import { connectNats } from '../../runtime/nats.ts';
import {
  COMMANDS_STREAM,
  IMAGES_BUCKET,
  PLANS_STREAM,
  PLANS_SUBJECTS,
  TRUST_CHECKPOINT_BUCKET,
  commandConsumerName,
  commandSubject,
  nodeEventSubject,
  nodeInboxPrefix,
  planSubject,
  relayEventSubject,
  rolloutEventSubject,
  type ArtifactManifest,
} from '../../schema/index.ts';
import {
  credsPath,
  ensureNatsAuth,
  exportCredentials,
  issueCredentials,
  issueNodeCredentials,
  prepareServerSecurity,
  revokeNodeCredentials,
} from '../../stack/index.ts';
import { openTrustCheckpointBucket } from '../../trust/index.ts';
import { startNats, type NatsHandle } from '../helpers/servers.ts';

let nats: NatsHandle;
let admin: NatsConnection;
let worker: NatsConnection;
let n1: NatsConnection;
const security = () => nats.security!;

/** Connects with a creds file over TLS, as the agent does (runtime/nats.ts). */
async function connectWith(creds: string, name: string, inboxPrefix?: string): Promise<NatsConnection> {
  return connectNats({ servers: [nats.url], credsFile: creds, tls: { ca: security().ca } }, name, {
    maxReconnectAttempts: 0,
    ...(inboxPrefix ? { inboxPrefix } : {}),
  });
}

const asNode = async (nodeId: string) =>
  connectWith(await issueNodeCredentials(security().authDir, nodeId), nodeId, nodeInboxPrefix(nodeId));

/** Resolves to the error's message when `p` is refused for lack of permission; fails otherwise. */
async function refused(p: Promise<unknown>, what: string): Promise<string> {
  try {
    await p;
  } catch (err) {
    const message = (err as Error).message;
    assert.match(message, /permissions violation/i, `${what}: refused for a reason other than permissions`);
    return message;
  }
  assert.fail(`${what}: expected the server to refuse it, but it was allowed`);
}

before(async () => {
  nats = await startNats({ secure: true });
  admin = await nats.connect();
  worker = await connectWith(security().workerCreds, 'worker');
  await ensureStreams(await jetstreamManager(worker));
  n1 = await asNode('n1');
});

after(async () => {
  await Promise.all([n1, worker].map((nc) => nc?.close().catch(() => undefined)));
  await nats?.stop();
});

test('nats auth - a node publishes its own events and the server refuses another node’s', async () => {
  const js = jetstream(n1);
  const ack = await js.publish(nodeEventSubject('n1', 'NodeHeartbeat'), '{}', { timeout: 5_000 });
  assert.ok(ack.seq > 0);
  const message = await refused(
    js.publish(nodeEventSubject('n2', 'UpgradeCommitted'), '{}', { timeout: 5_000 }),
    'n1 publishing n2’s UpgradeCommitted',
  );
  assert.match(message, /slotflow\.evt\.node\.n2\.UpgradeCommitted/);
  await refused(
    js.publish(rolloutEventSubject('r1', 'RolloutCompleted'), '{}', { timeout: 5_000 }),
    'n1 publishing a rollout event',
  );
  await refused(js.publish(commandSubject('n2'), '{}', { timeout: 5_000 }), 'n1 publishing a command');
});

test('nats auth - a node relays a peer’s events only under its own id as relayer', async () => {
  const js = jetstream(n1);
  const ack = await js.publish(relayEventSubject('n2', 'n1', 'NodeHeartbeat'), '{}', { timeout: 5_000 });
  assert.ok(ack.seq > 0, 'n1 relays n2’s event as relayer n1');
  const message = await refused(
    js.publish(relayEventSubject('n2', 'n3', 'NodeHeartbeat'), '{}', { timeout: 5_000 }),
    'n1 relaying under n3’s id',
  );
  assert.match(message, /slotflow\.evt\.relay\.n2\.n3\.NodeHeartbeat/);
  await refused(
    js.publish(nodeEventSubject('n2', 'NodeHeartbeat'), '{}', { timeout: 5_000 }),
    'n1 publishing n2’s direct subject',
  );
  await refused(
    jetstream(worker).publish(relayEventSubject('n2', 'n1', 'NodeHeartbeat'), '{}', { timeout: 5_000 }),
    'the worker publishing a relay',
  );
});

test('nats auth - a node reads its own commands through its durable consumer, never another node’s', async () => {
  const wjs = jetstream(worker);
  await wjs.publish(commandSubject('n1'), 'for n1');
  await wjs.publish(commandSubject('n2'), 'for n2');
  // What the agent does: its consumer, created with its own filter subject, then next + ack.
  await ensureConsumer(n1, 'n1');
  const mine = await jetstream(n1).consumers.get(COMMANDS_STREAM, commandConsumerName('n1'));
  const m = await mine.next({ expires: 5_000 });
  assert.equal(m?.string(), 'for n1');
  assert.equal(await m!.ackAck(), true);

  // n2's consumer exists (the worker made it); n1 may neither read it nor make its own on n2's subject.
  const jsm = await jetstreamManager(worker);
  await jsm.consumers.add(COMMANDS_STREAM, {
    durable_name: commandConsumerName('n2'),
    filter_subject: commandSubject('n2'),
    ack_policy: AckPolicy.Explicit,
  });
  await refused(ensureConsumer(n1, 'n2'), 'n1 creating n2’s consumer');
  await refused(
    jetstream(n1).consumers.get(COMMANDS_STREAM, commandConsumerName('n2')),
    'n1 opening n2’s consumer',
  );
  const n1jsm = await jetstreamManager(n1);
  await refused(
    n1jsm.consumers.add(COMMANDS_STREAM, {
      durable_name: commandConsumerName('n1'),
      filter_subject: commandSubject('n2'),
      ack_policy: AckPolicy.Explicit,
    }),
    'n1 pointing its own consumer at n2’s commands',
  );
  await refused(
    n1.request(`$JS.API.CONSUMER.MSG.NEXT.${COMMANDS_STREAM}.${commandConsumerName('n2')}`, '1', {
      timeout: 5_000,
    }),
    'n1 pulling from n2’s consumer',
  );
  await refused(
    jetstream(n1).consumers.get(COMMANDS_STREAM, { filter_subjects: commandSubject('n2') }),
    'n1 reading n2’s commands through an ordered consumer',
  );
  await refused(n1jsm.streams.update(COMMANDS_STREAM, {}), 'n1 changing the commands stream');

  // A plain subscription outside its inbox is refused too: the connection reports it.
  const violation = (async () => {
    for await (const s of n1.status()) if (s.type === 'error') return String(s.error);
    return '';
  })();
  n1.subscribe(commandSubject('n2'));
  assert.match(await violation, /permissions violation for subscription to "slotflow\.cmd\.n2"/i);
});

test('nats auth - a node reads the rollout plans and the image bucket, read-only', async () => {
  await jetstream(worker).publish(planSubject('r1'), '{"plan":1}');
  const plans = await jetstream(n1).consumers.get(PLANS_STREAM, {
    filter_subjects: PLANS_SUBJECTS,
    deliver_policy: DeliverPolicy.LastPerSubject,
  });
  assert.equal((await plans.next({ expires: 5_000 }))?.string(), '{"plan":1}');

  const image = Buffer.alloc(300_000, 7);
  const digest = `sha256:${createHash('sha256').update(image).digest('hex')}`;
  const os = await new Objm(worker).create(IMAGES_BUCKET);
  await os.putBlob({ name: digest }, new Uint8Array(image));
  const source = createNatsSource(async () => n1, IMAGES_BUCKET);
  const manifest = { digest, size: image.length } as ArtifactManifest;
  let read = 0;
  for await (const chunk of await source.open(manifest, 0)) read += chunk.length;
  assert.equal(read, image.length);
  // Resumed downloads locate the offset with a headers-only consumer: allowed as well.
  let rest = 0;
  for await (const chunk of await source.open(manifest, 200_000)) rest += chunk.length;
  assert.equal(rest, image.length - 200_000);

  const mine = await new Objm(n1).open(IMAGES_BUCKET);
  await refused(mine.putBlob({ name: 'rogue' }, new Uint8Array(10)), 'n1 writing to the image bucket');
});

test('nats auth - node credentials issued after the server started work without a restart', async () => {
  const pid = nats.pid;
  const n3 = await asNode('n3-late');
  try {
    const ack = await jetstream(n3).publish(nodeEventSubject('n3-late', 'NodeRegistered'), '{}');
    assert.ok(ack.seq > 0);
    await refused(
      jetstream(n3).publish(nodeEventSubject('n1', 'NodeRegistered'), '{}', { timeout: 5_000 }),
      'n3-late publishing n1’s event',
    );
  } finally {
    await n3.close();
  }
  assert.equal(nats.pid, pid, 'the server was not restarted');
});

test('nats auth - the worker runs the control plane but cannot speak for a node', async () => {
  const js = jetstream(worker);
  assert.ok((await js.publish(rolloutEventSubject('r1', 'RolloutStarted'), '{}')).seq > 0);
  assert.ok((await js.publish(commandSubject('n9'), '{}')).seq > 0);
  await (await jetstreamManager(worker)).streams.info(COMMANDS_STREAM);
  await refused(
    js.publish(nodeEventSubject('n1', 'UpgradeCommitted'), '{}', { timeout: 5_000 }),
    'the worker publishing a node event',
  );
  // The operator's CLI credentials administer everything, node subjects included.
  assert.ok((await jetstream(admin).publish(nodeEventSubject('n1', 'NodeEnrolled'), '{}')).seq > 0);
});

test('nats auth - connections without credentials, with forged credentials or without TLS are refused', async () => {
  await assert.rejects(
    connect({ servers: nats.url, tls: { caFile: security().ca }, reconnect: false, timeout: 5_000 }),
    /authorization violation/i,
  );
  // A user JWT signed by a key of its own, not the account's signing key.
  const otherDir = `${security().authDir}-other`;
  const forged = await issueCredentials(otherDir, { type: 'cli' });
  await assert.rejects(
    connect({
      servers: nats.url,
      tls: { caFile: security().ca },
      authenticator: credsAuthenticator(await readFile(forged)),
      reconnect: false,
      timeout: 5_000,
    }),
    /authorization violation/i,
  );
  // Without the CA the client does not trust the server's certificate.
  await assert.rejects(
    connect({
      servers: nats.url,
      authenticator: credsAuthenticator(await readFile(security().cliCreds)),
      reconnect: false,
      timeout: 5_000,
    }),
    /certificate/i,
  );
  // A client that never starts TLS gets no further than the INFO line.
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = rawConnect(nats.port, '127.0.0.1');
    let text = '';
    socket.setTimeout(10_000, () => reject(new Error('the server kept a plaintext client open')));
    socket.on('data', (d) => {
      text += d.toString();
      if (text.includes('\r\n') && !text.includes('PING'))
        socket.write('CONNECT {"verbose":false}\r\nPING\r\n');
    });
    socket.on('close', () => resolve(text));
    socket.on('error', () => resolve(text));
  });
  assert.match(answer, /"tls_required":true/);
  assert.doesNotMatch(answer, /PONG/);
});

test('nats auth - exported credentials give each holder its own creds and the CA, nothing more', async () => {
  const dir = `${security().authDir}-export`;
  const exported = await exportCredentials(security(), dir, ['n4']);
  assert.deepEqual(
    exported.map((e) => e.holder),
    ['worker', 'cli', 'n4'],
  );
  const n4 = exported.find((e) => e.holder === 'n4')!;
  assert.equal((await stat(n4.creds)).mode & 0o777, 0o600);
  const nc = await connectNats({ servers: [nats.url], credsFile: n4.creds, tls: { ca: n4.ca } }, 'n4', {
    maxReconnectAttempts: 0,
    inboxPrefix: nodeInboxPrefix('n4'),
  });
  try {
    assert.ok((await jetstream(nc).publish(nodeEventSubject('n4', 'NodeRegistered'), '{}')).seq > 0);
    await refused(
      jetstream(nc).publish(nodeEventSubject('n1', 'NodeRegistered'), '{}', { timeout: 5_000 }),
      'n4 publishing n1’s event',
    );
  } finally {
    await nc.close();
  }
  await assert.rejects(exportCredentials(security(), dir, ['worker']), /other than 'worker' and 'cli'/);
});

test('nats auth - a revoked node is cut off on reload, without a restart; other nodes stay', async () => {
  const pid = nats.pid;
  const n5 = await asNode('n5');
  const closed = n5.closed();
  assert.ok((await jetstream(n5).publish(nodeEventSubject('n5', 'NodeHeartbeat'), '{}')).seq > 0);

  const revocation = await revokeNodeCredentials(security().authDir, 'n5');
  assert.equal(revocation.userKeys.length, 1);
  process.kill(nats.pid, 'SIGHUP'); // what reloadStackNats does for the local stack
  const reason = await Promise.race([closed, sleep(10_000).then(() => 'still connected')]);
  assert.match(String(reason), /revoked|authorization violation/i);
  await assert.rejects(
    connectWith(credsPath(security().authDir, { type: 'node', nodeId: 'n5' }), 'n5-again'),
    /authorization violation/i,
  );
  assert.ok((await jetstream(n1).publish(nodeEventSubject('n1', 'NodeHeartbeat'), '{}')).seq > 0);
  // Re-enrolled later, the node gets a new key that the revocation does not cover.
  const again = await asNode('n5');
  await again.close();
  assert.equal(nats.pid, pid, 'the server was not restarted');
});

test('nats auth - the auth file with the account keys must be readable by its owner only', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'slotflow-nats-auth-'));
  try {
    await ensureNatsAuth(dir);
    await chmod(join(dir, 'auth.json'), 0o644);
    await assert.rejects(ensureNatsAuth(dir), (err: Error) => {
      assert.equal(err.name, 'SecurityMaterialError');
      assert.match(err.message, /mode 0600.*found 644.*chmod 600/);
      return true;
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('nats auth - worker credentials granting other permissions than the worker has now are issued again', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'slotflow-nats-auth-'));
  try {
    const first = await prepareServerSecurity(dir);
    const kept = await readFile(first.workerCreds, 'utf8');
    assert.equal(
      await readFile((await prepareServerSecurity(dir)).workerCreds, 'utf8'),
      kept,
      'current: kept',
    );
    // As if made under older rules: a credential whose permissions are not the worker's.
    await writeFile(first.workerCreds, await readFile(await issueNodeCredentials(dir, 'n1'), 'utf8'));
    const again = await readFile((await prepareServerSecurity(dir)).workerCreds, 'utf8');
    assert.notEqual(again, kept);
    assert.match(Buffer.from(again.split('\n')[1]!.split('.')[1]!, 'base64url').toString(), /role:worker/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('nats auth - only the worker writes the trust checkpoint bucket; the CLI reads it, a node cannot touch it', async () => {
  const bucket = await openTrustCheckpointBucket(worker);
  await bucket.put('head', '{"written":"by the worker"}');
  const subject = `$KV.${TRUST_CHECKPOINT_BUCKET}.head`;
  await refused(
    jetstream(admin).publish(subject, '{}', { timeout: 5_000 }),
    'the CLI writing the checkpoint',
  );
  const jsm = await jetstreamManager(admin);
  await refused(jsm.streams.purge(`KV_${TRUST_CHECKPOINT_BUCKET}`), 'the CLI purging the checkpoint');
  await refused(jsm.streams.delete(`KV_${TRUST_CHECKPOINT_BUCKET}`), 'the CLI deleting the checkpoint');
  const read = await admin.request(
    `$JS.API.DIRECT.GET.KV_${TRUST_CHECKPOINT_BUCKET}`,
    JSON.stringify({ last_by_subj: subject }),
    { timeout: 5_000 },
  );
  assert.equal(read.string(), '{"written":"by the worker"}', 'the CLI reads it');
  await refused(jetstream(n1).publish(subject, '{}', { timeout: 5_000 }), 'a node writing the checkpoint');
});
