// The agent's command decision as a pure function: the anti-rollback floor, the signed downgrade
// allowance and the key commands. The state files behind them (floor, trusted keys) survive a
// reopen, as they must across restarts and reboots.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decide, type DecisionContext } from '../../node-agent/command-decision.ts';
import { emptyJournal } from '../../node-agent/journal-data.ts';
import type { SlotStatus } from '../../node-agent/slot-drivers/driver.ts';
import { openTrustStore } from '../../node-agent/trusted-keys.ts';
import { openVersionFloor } from '../../node-agent/version-floor.ts';
import { AnyCommand, isKeyCommand, type AnyCommandInput, type KeyCommand } from '../../schema/index.ts';
import { keyIdOf, trustKeys, type Verification } from '../../signing/index.ts';
import { scratchDir } from './scratch.ts';

const NOW = new Date('2026-11-22T10:00:00.000Z');
const digestOf = (n: number) => `sha256:${n.toString(16).padStart(2, '0').repeat(32)}`;

function keyPair() {
  const { publicKey } = generateKeyPairSync('ed25519');
  return {
    keyId: keyIdOf(publicKey),
    publicKey,
    pem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}
const signer = keyPair();

function verified(input: Partial<AnyCommandInput> & { type: AnyCommand['type'] }): Verification {
  const command = AnyCommand.parse({
    v: 1,
    commandId: `c-${Math.random().toString(36).slice(2)}`,
    nonce: 'n'.repeat(24),
    issuedAt: NOW.toISOString(),
    expiresAt: new Date(NOW.getTime() + 600_000).toISOString(),
    nodeId: 'n-1',
    ...(input.type === 'TrustKey' || input.type === 'RevokeKey' ? {} : { rolloutId: 'r-1' }),
    ...input,
  });
  return { ok: true, command, keyId: signer.keyId };
}

/** A verified key command, typed as the trust store takes it. */
function keyCommand<T extends 'TrustKey' | 'RevokeKey'>(
  input: Partial<AnyCommandInput> & { type: T },
): Extract<KeyCommand, { type: T }> {
  const v = verified(input);
  assert.ok(v.ok && isKeyCommand(v.command));
  return v.command as Extract<KeyCommand, { type: T }>;
}

function upgradeTo(version: string, allowDowngrade = false): Verification {
  const digest = digestOf(Number(version.split('.')[0]) + 10);
  return verified({
    type: 'Upgrade',
    image: { type: 'oci', reference: `registry.example/os:${version}`, digest, version },
    manifestDigest: digest,
    allowDowngrade,
  });
}

/** A node that runs `running` on slot a, with `previous` in slot b. */
function ctx(running: string, floor: string | undefined, previous = '1.0.0'): DecisionContext {
  const status: SlotStatus = {
    booted: 'a',
    primary: 'a',
    trial: false,
    slots: { a: { version: running, digest: digestOf(1) }, b: { version: previous, digest: digestOf(2) } },
  };
  return {
    journal: emptyJournal(NOW),
    status: async () => status,
    accepts: ['oci', 'file'],
    healthChecks: [],
    initialVersion: '0.0.0',
    now: NOW,
    floor,
    keys: { trusted: new Set([signer.keyId]), revoked: new Set() },
  };
}

test('decision - an upgrade below the minimum version is refused as a downgrade, even above the running version', async () => {
  // The node committed 3.0.0 once, then was rolled back to 2.0.0: 2.5.0 would be a rollback.
  const refused = await decide(upgradeTo('2.5.0'), ctx('2.0.0', '3.0.0'));
  assert.equal(refused.kind, 'reject');
  assert.equal(refused.kind === 'reject' && refused.reason, 'downgrade');
  assert.match(
    refused.kind === 'reject' ? refused.message : '',
    /older than this node's minimum version 3\.0\.0 \(the newest it committed; it runs 2\.0\.0\)/,
  );
  assert.equal(
    (await decide(upgradeTo('2.5.0', true), ctx('2.0.0', '3.0.0'))).kind,
    'start',
    'signed allowance',
  );
  assert.equal(
    (await decide(upgradeTo('3.0.0'), ctx('2.0.0', '3.0.0'))).kind,
    'start',
    'the floor itself is fine',
  );
  assert.equal((await decide(upgradeTo('2.5.0'), ctx('2.0.0', undefined))).kind, 'start', 'no floor yet');
});

test('decision - a rollback below the floor needs the signed allowance a rollout rollback carries', async () => {
  const plain = await decide(verified({ type: 'Rollback', toVersion: '1.0.0' }), ctx('2.0.0', '2.0.0'));
  assert.equal(plain.kind === 'reject' && plain.reason, 'downgrade');
  assert.match(plain.kind === 'reject' ? plain.message : '', /below this node's minimum version 2\.0\.0/);
  const allowed = await decide(
    verified({ type: 'Rollback', toVersion: '1.0.0', allowDowngrade: true }),
    ctx('2.0.0', '2.0.0'),
  );
  assert.equal(allowed.kind, 'start');
  assert.equal(allowed.kind === 'start' && allowed.op.toVersion, '1.0.0');
});

test('decision - key commands: announced keys must match their id, a revocation never cuts the node off', async () => {
  const next = keyPair();
  const trust = await decide(
    verified({ type: 'TrustKey', trustKeyId: next.keyId, publicKey: next.pem }),
    ctx('1.0.0', undefined),
  );
  assert.equal(trust.kind, 'trust');
  const mismatch = await decide(
    verified({ type: 'TrustKey', trustKeyId: keyPair().keyId, publicKey: next.pem }),
    ctx('1.0.0', undefined),
  );
  assert.equal(mismatch.kind === 'reject' && mismatch.reason, 'malformed');
  const self = await decide(
    verified({ type: 'RevokeKey', revokeKeyId: signer.keyId }),
    ctx('1.0.0', undefined),
  );
  assert.equal(self.kind === 'reject' && self.reason, 'unsupported');
  const c = ctx('1.0.0', undefined);
  const last = await decide(verified({ type: 'RevokeKey', revokeKeyId: signer.keyId }), {
    ...c,
    keys: { trusted: new Set([signer.keyId]), revoked: new Set() },
  });
  assert.equal(last.kind, 'reject');
  const revokeOther = await decide(verified({ type: 'RevokeKey', revokeKeyId: next.keyId }), {
    ...c,
    keys: { trusted: new Set([signer.keyId, next.keyId]), revoked: new Set() },
  });
  assert.equal(revokeOther.kind, 'revoke');
  const again = await decide(verified({ type: 'TrustKey', trustKeyId: next.keyId, publicKey: next.pem }), {
    ...c,
    keys: { trusted: new Set([signer.keyId]), revoked: new Set([next.keyId]) },
  });
  assert.equal(
    again.kind === 'reject' && again.reason,
    'revoked-key',
    'a revoked key is never trusted again',
  );
});

test('version floor - only goes up, and a reopened floor (a restart) remembers it', async () => {
  const file = join(await scratchDir('slotflow-floor-'), 'version-floor.json');
  const floor = await openVersionFloor(file);
  assert.equal(floor.current(), undefined);
  assert.equal(await floor.raise('2.0.0'), true);
  assert.equal(await floor.raise('1.5.0'), false);
  assert.equal(floor.current(), '2.0.0');
  assert.equal((await openVersionFloor(file)).current(), '2.0.0');
  await (await openVersionFloor(file)).raise('2.1.0');
  assert.equal((JSON.parse(await readFile(file, 'utf8')) as { version: string }).version, '2.1.0');
});

test('trusted keys - announced and revoked keys survive a reopen; a revocation beats the bootstrap directory', async () => {
  const file = join(await scratchDir('slotflow-trust-'), 'trusted-keys.json');
  const next = keyPair();
  const bootstrap = trustKeys(signer.publicKey);
  const store = await openTrustStore({ file, bootstrap });
  const live = store.keys;
  await store.trust(
    keyCommand({ type: 'TrustKey', trustKeyId: next.keyId, publicKey: next.pem }),
    signer.keyId,
  );
  assert.ok(live.has(next.keyId), 'holders of the map see the new key at once');
  const reopened = await openTrustStore({ file, bootstrap });
  assert.deepEqual([...reopened.keys.keys()].sort(), [signer.keyId, next.keyId].sort());
  const revoke = keyCommand({ type: 'RevokeKey', revokeKeyId: signer.keyId });
  await reopened.revoke(revoke, next.keyId);
  const third = await openTrustStore({ file, bootstrap });
  assert.deepEqual([...third.keys.keys()], [next.keyId]);
  assert.ok(third.revoked.has(signer.keyId));
});
