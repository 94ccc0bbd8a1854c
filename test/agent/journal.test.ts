import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { JournalError } from '../../node-agent/errors.ts';
import { openJournal } from '../../node-agent/journal.ts';
import { nodeEvent } from '../../node-agent/events.ts';
import { eventStamp } from '../../node-agent/event-signer.ts';
import { nodePublicKey, verifyNodeEvent } from '../../signing/index.ts';
import { newNodeIdentity } from '../../simulator/identity.ts';
import { scratchDir } from './scratch.ts';

const dir = () => scratchDir('slotflow-journal-');

test('journal - a fresh journal is written at once; commits are on disk before they are visible', async () => {
  const file = join(await dir(), 'journal.json');
  const journal = await openJournal(file);
  assert.equal(JSON.parse(await readFile(file, 'utf8')).state, 'idle');
  const event = nodeEvent('n-1', 'NodeModeChanged', { mode: 'nats', reason: 'test' });
  const data = await journal.commit((d) => {
    d.outbox.push(event);
  });
  assert.equal(data.seq, 1);
  const reopened = await openJournal(file);
  assert.deepEqual(
    reopened.data.outbox.map((e) => e.id),
    [event.id],
  );
});

test('journal - commits run one at a time in call order, and a failing one does not block the rest', async () => {
  const journal = await openJournal(join(await dir(), 'journal.json'));
  const results = await Promise.allSettled([
    journal.commit((d) => void (d.nonces['a'] = Date.now() + 60_000)),
    journal.commit(() => {
      throw new Error('boom');
    }),
    journal.commit((d) => void (d.nonces['b'] = Date.now() + 60_000)),
  ]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  assert.deepEqual(Object.keys(journal.data.nonces).sort(), ['a', 'b']);
});

test('journal - expired nonces are forgotten and a leftover temp file is ignored', async () => {
  const d = await dir();
  const file = join(d, 'journal.json');
  const journal = await openJournal(file);
  await journal.commit((j) => {
    j.nonces['old'] = Date.now() - 1;
    j.nonces['new'] = Date.now() + 60_000;
  });
  await journal.commit(() => undefined);
  assert.deepEqual(Object.keys(journal.data.nonces), ['new']);
  await writeFile(`${file}.tmp`, '{"half": ');
  const reopened = await openJournal(file);
  assert.deepEqual(Object.keys(reopened.data.nonces), ['new']);
  assert.deepEqual((await readdir(d)).sort(), ['journal.json']);
});

test('journal - a journal from a newer agent or a damaged one is refused with what to do', async () => {
  const file = join(await dir(), 'journal.json');
  await writeFile(file, JSON.stringify({ v: 2, state: 'idle' }));
  await assert.rejects(
    openJournal(file),
    (err: Error) => err instanceof JournalError && /version 2, this agent reads up to 1/.test(err.message),
  );
  await writeFile(file, '{"v":1');
  await assert.rejects(
    openJournal(file),
    (err: Error) => err instanceof JournalError && /not JSON.*move it away/.test(err.message),
  );
  await writeFile(file, JSON.stringify({ v: 1, seq: 0, state: 'flying' }));
  await assert.rejects(
    openJournal(file),
    (err: Error) => err instanceof JournalError && /state/.test(err.message),
  );
});

test('journal - events are numbered and signed as they enter the outbox; a reopened journal never reuses a number', async () => {
  const file = join(await dir(), 'journal.json');
  const identity = newNodeIdentity();
  const key = { keyId: identity.keyId, key: nodePublicKey(identity.publicKey) };
  const journal = await openJournal(file, undefined, eventStamp(identity));
  const event = nodeEvent('n-1', 'NodeModeChanged', { mode: 'p2p', reason: 'test' });
  const data = await journal.commit((d) => {
    d.outbox.push(event);
    d.handled.push({ commandId: 'r-1:n-1:upgrade', final: event });
  });
  const [signed] = data.outbox;
  assert.equal(signed?.seq, 1);
  assert.deepEqual(verifyNodeEvent(signed!, key), { ok: true });
  assert.deepEqual(data.handled[0]?.final, signed, 'the finished-command record holds the signed copy');
  assert.equal(await journal.reserveEventSeq(), 2, 'a heartbeat takes the next number');
  const reopened = await openJournal(file, undefined, eventStamp(identity));
  assert.equal(await reopened.reserveEventSeq(), 3, 'numbers survive a restart');
  const again = await reopened.commit((d) => {
    d.outbox.push(nodeEvent('n-1', 'NodeModeChanged', { mode: 'nats', reason: 'test' }));
  });
  assert.deepEqual(
    again.outbox.map((e) => e.seq),
    [1, 4],
  );
});
