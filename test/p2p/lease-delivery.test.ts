// Lease reports reach the peers that wait on them, whatever the timing: a report made before
// any peer listened, a node that reboots right after reporting, a waiter that starts late. The
// plan's turns here are long (a minute of start window, a minute of lease), so a waiter that
// only got its go from the fixed timetable would wait a minute or more: every wait below must
// end within seconds, by the report itself.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SlotflowPeer } from '../../p2p/index.ts';
import type { SignedPlan } from '../../schema/index.ts';
import type { SigningKey } from '../../signing/index.ts';
import { cleanupDirs, controlPlaneKey, startPeer, stopAll, tempDir, testPlan, until } from './helpers.ts';

const started: SlotflowPeer[] = [];
let key: SigningKey;

after(async () => {
  await stopAll(started);
  await cleanupDirs();
});

async function peer(nodeId: string, options: Parameters<typeof startPeer>[2] = {}): Promise<SlotflowPeer> {
  key ??= await controlPlaneKey();
  const p = await startPeer(nodeId, key, { republish: { leaseMs: 1_000 }, ...options });
  started.push(p);
  return p;
}

function planFor(rolloutId: string, waves: string[][], peers: Record<string, string>): SignedPlan {
  return testPlan(key, rolloutId, waves, {
    maxUnavailable: 1,
    leaseTtlMs: 60_000,
    startWindowMs: 60_000,
    clockSkewMs: 500,
    peerIds: peers,
  });
}

function doneOf(p: SlotflowPeer, rolloutId: string, nodeId: string): boolean {
  return p.lease.reports(rolloutId).get(nodeId)?.done !== undefined;
}

test('lease delivery - a report made before any peer listened reaches a peer that joins later', async () => {
  const early = await peer('early-1');
  await early.lease.publish({
    v: 1,
    type: 'done',
    rolloutId: 'r-early',
    nodeId: 'early-1',
    at: new Date().toISOString(),
    outcome: 'succeeded',
  });
  // Nobody heard that one. Now a waiter joins.
  const late = await peer('early-2', { bootstrap: [early.multiaddrs()[0]!] });
  await until(() => doneOf(late, 'r-early', 'early-1'), 8_000, 'the late peer to learn the earlier report');
});

test('lease delivery - a node that reboots right after reporting goes on announcing its report', async () => {
  const dataDir = await tempDir();
  const first = await peer('boot-1', { dataDir });
  await first.lease.publish({
    v: 1,
    type: 'done',
    rolloutId: 'r-boot',
    nodeId: 'boot-1',
    at: new Date().toISOString(),
    outcome: 'succeeded',
  });
  await first.stop(); // the reboot: the process and its memory are gone
  const again = await peer('boot-1', { dataDir });
  assert.equal(again.peerId, first.peerId, 'same identity after the reboot');
  const waiter = await peer('boot-2', { bootstrap: [again.multiaddrs()[0]!] });
  await until(
    () => doneOf(waiter, 'r-boot', 'boot-1'),
    8_000,
    'the waiter to learn the report made before the reboot',
  );
});

test('lease delivery - a waiter that starts late takes its turn from the report, not the fixed timetable', async () => {
  const holder = await peer('late-1');
  const signed = planFor('r-late', [['late-1'], ['late-2']], { 'late-1': holder.peerId });
  const lease = await holder.coordinator(signed).acquire({ signal: AbortSignal.timeout(5_000) });
  await lease.release('succeeded');

  const waiter = await peer('late-2', { bootstrap: [holder.multiaddrs()[0]!] });
  const t0 = Date.now();
  const mine = await waiter.coordinator(signed).acquire({ signal: AbortSignal.timeout(15_000) });
  const waited = Date.now() - t0;
  assert.ok(waited < 10_000, `took the turn after ${waited} ms, by the report (fixed end is a minute away)`);
  await mine.release('succeeded');
});

test('lease delivery - unreadable kept reports are moved aside, and the peer starts without them', async () => {
  const dataDir = await tempDir();
  await writeFile(join(dataDir, 'lease-reports.json'), '{"v":1,"reports":[{"nope":true}]}');
  const p = await peer('bad-1', { dataDir });
  assert.equal(p.lease.reports('r-any').size, 0);
  assert.match(await readFile(join(dataDir, 'lease-reports.json.unreadable'), 'utf8'), /nope/);
});
