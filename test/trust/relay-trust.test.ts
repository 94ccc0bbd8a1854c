// Peers' events relayed into the log under the relayer's own NATS credentials, against a secured
// nats-server as `stack up` runs it: the readers (trust gate, projector, `slotflow events`) take
// a relayed event as its author's, refuse one whose content was changed on the way, and count a
// second relayed copy of an event once, without listing it among the refusals.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { pino } from 'pino';
import { openEventLog, type EventLog } from '../../eventlog/index.ts';
import { natsRelayPublisher } from '../../p2p/index.ts';
import { createProjector, openProjectionBucket, type Projector } from '../../projection/index.ts';
import { connectNats } from '../../runtime/nats.ts';
import {
  nodeInboxPrefix,
  relayEventSubject,
  type DomainEvent,
  type NodeEvent,
  type RejectionRecord,
} from '../../schema/index.ts';
import { issueNodeCredentials } from '../../stack/index.ts';
import {
  createRejectionRecorder,
  listRejections,
  openRejectionBucket,
  startTrustGate,
  type RejectionRecorder,
  type TrustGate,
} from '../../trust/index.ts';
import { runCli } from '../helpers/cli.ts';
import { startNats, type NatsHandle } from '../helpers/servers.ts';
import { SignedFleet } from '../helpers/signed-events.ts';

let nats: NatsHandle;
let log: EventLog;
let admin: NatsConnection;
let n1: NatsConnection;
let projector: Projector;
let gate: TrustGate;
let gateRecorder: RejectionRecorder;
const fleet = new SignedFleet();
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

before(async () => {
  nats = await startNats({ secure: true });
  admin = await nats.connect();
  log = await openEventLog(admin);
  const security = nats.security!;
  n1 = await connectNats(
    {
      servers: [nats.url],
      credsFile: await issueNodeCredentials(security.authDir, 'n1'),
      tls: { ca: security.ca },
    },
    'n1',
    { maxReconnectAttempts: 0, inboxPrefix: nodeInboxPrefix('n1') },
  );
  const rejections = await openRejectionBucket(admin);
  gateRecorder = createRejectionRecorder(rejections, logger);
  gate = startTrustGate({ log, trustedKeys: fleet.trustedKeys, recorder: gateRecorder, logger });
  projector = createProjector({
    log,
    kv: await openProjectionBucket(admin),
    logger,
    trustedKeys: fleet.trustedKeys,
    recorder: createRejectionRecorder(rejections, logger),
  });
  await projector.start();
  // n2 is enrolled; it never reaches NATS itself: n1 carries its events.
  await log.append(fleet.enrol('n2'));
});

after(async () => {
  await projector?.stop();
  await gate?.stop();
  await n1?.close().catch(() => undefined);
  await nats?.stop();
});

const at = () => new Date().toISOString();

function registered(id: string): NodeEvent {
  return fleet.sign({
    v: 1,
    id,
    at: at(),
    type: 'NodeRegistered',
    nodeId: 'n2',
    labels: { site: 'relay' },
    version: '1.0.0',
    activeSlot: 'a',
    agentVersion: 'test',
  }) as NodeEvent;
}

function heartbeat(id: string, version: string): NodeEvent {
  return fleet.sign({
    v: 1,
    id,
    at: at(),
    type: 'NodeHeartbeat',
    nodeId: 'n2',
    version,
    activeSlot: 'a',
    state: 'idle',
  }) as NodeEvent;
}

/** Stores `event` as n1 relays it (its own credentials), at a stream sequence returned. */
async function relay(event: DomainEvent, options: { author?: string; msgID?: string } = {}): Promise<number> {
  const ack = await jetstream(n1).publish(
    relayEventSubject(options.author ?? (event as NodeEvent).nodeId, 'n1', event.type),
    JSON.stringify(event),
    { msgID: options.msgID ?? event.id },
  );
  assert.equal(ack.duplicate, false, 'stored, not de-duplicated by the stream');
  return ack.seq;
}

async function rejected(): Promise<RejectionRecord[]> {
  return listRejections(await openRejectionBucket(admin), 'n2');
}

test('relay trust - a relayed event reaches the gate and the projection as its author’s', async () => {
  const event = registered('n2-registered');
  const { duplicate, seq: first } = await natsRelayPublisher(n1, 'n1').publish(event);
  assert.equal(duplicate, false);
  assert.deepEqual(await gate.verdict(first), { ok: true, changed: false });
  await projector.waitForSeq(first, 10_000);
  const node = projector.current().nodes.get('n2');
  assert.equal(node?.version, '1.0.0');
  assert.deepEqual(node?.labels, { site: 'relay' });
  assert.equal(projector.current().trust.nodes.get('n2')?.window.top, (event as { seq: number }).seq);
});

test('relay trust - a relay whose content was altered is refused by signature and listed', async () => {
  const signed = heartbeat('n2-hb-altered', '1.0.0');
  const altered = { ...signed, version: '9.9.9' } as NodeEvent;
  const seq = await relay(altered);
  const verdict = await gate.verdict(seq);
  assert.equal(verdict.ok, false);
  assert.equal(!verdict.ok && verdict.reason, 'bad-signature');
  await projector.waitForSeq(seq, 10_000);
  assert.equal(projector.current().nodes.get('n2')?.version, '1.0.0');
  const record = (await rejected()).find((r) => r.streamSeq === seq);
  assert.equal(record?.reason, 'bad-signature');
  assert.equal(record?.subject, relayEventSubject('n2', 'n1', 'NodeHeartbeat'));
});

test('relay trust - a relay filed under another node than its author is refused', async () => {
  const seq = await relay(heartbeat('n2-hb-misfiled', '1.0.0'), { author: 'n4' });
  const verdict = await gate.verdict(seq);
  assert.equal(!verdict.ok && verdict.reason, 'malformed');
});

test('relay trust - a second relayed copy counts once and is not listed as refused', async () => {
  const event = heartbeat('n2-hb-twice', '1.1.0');
  const firstSeq = await relay(event);
  assert.deepEqual(await gate.verdict(firstSeq), { ok: true, changed: false });
  // A copy stored after the stream's de-duplication window (another Nats-Msg-Id stands for that).
  const copySeq = await relay(event, { msgID: `${event.id}-late` });
  const verdict = await gate.verdict(copySeq);
  assert.equal(!verdict.ok && verdict.reason, 'duplicate-relay');
  assert.equal(gateRecorder.duplicates(), 1);
  await projector.waitForSeq(copySeq, 10_000);
  assert.ok(!(await rejected()).some((r) => r.streamSeq === copySeq), 'the copy is not listed as refused');

  // `slotflow events --node n2` shows n2's relayed events once each, with who relayed them.
  const cli = await runCli(['events', '--node', 'n2', '--json'], {
    NATS_URL: nats.url,
    NATS_CREDS: nats.security!.cliCreds,
    NATS_TLS_CA: nats.security!.ca,
  });
  assert.equal(cli.code, 0, cli.stderr);
  const lines = cli.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { event: DomainEvent; relayedBy?: string });
  const ids = lines.map((l) => l.event.id);
  assert.equal(ids.filter((id) => id === event.id).length, 1, 'the late copy is shown once');
  assert.ok(ids.includes('n2-registered'));
  assert.ok(lines.every((l) => l.relayedBy === 'n1'));
});
