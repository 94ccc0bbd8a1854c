import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, stat, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createMemoryNonceStore,
  initKeys,
  loadSigningKey,
  loadTrustedKeys,
  newNonce,
  signCommand,
  trustKeys,
  verifyCommand,
  type SigningKey,
} from '../../signing/index.ts';
import type { CommandInput } from '../../schema/index.ts';

const digest = `sha256:${'ab'.repeat(32)}`;
const NOW = Date.parse('2026-11-22T10:00:00.000Z');

function command(overrides: Partial<Record<string, unknown>> = {}): CommandInput {
  return {
    v: 1,
    type: 'Rollback',
    commandId: 'r-1:n-1:rollback',
    nonce: newNonce(),
    issuedAt: new Date(NOW).toISOString(),
    expiresAt: new Date(NOW + 600_000).toISOString(),
    nodeId: 'n-1',
    rolloutId: 'r-1',
    toVersion: '1.0.0',
    ...overrides,
  } as CommandInput;
}

async function keyPair(): Promise<SigningKey> {
  const home = await mkdtemp(join(tmpdir(), 'slotflow-keys-'));
  await initKeys(home);
  return loadSigningKey(home);
}

function ctx(key: SigningKey, nodeId = 'n-1') {
  return {
    trustedKeys: trustKeys(key.publicKey),
    nodeId,
    nonces: createMemoryNonceStore(() => NOW),
    now: new Date(NOW),
  };
}

test('signing - keys init writes a 0600 private key and is idempotent', async () => {
  const home = await mkdtemp(join(tmpdir(), 'slotflow-keys-'));
  const first = await initKeys(home);
  assert.equal(first.created, true);
  assert.equal((await stat(first.privatePath)).mode & 0o777, 0o600);
  const again = await initKeys(home);
  assert.equal(again.created, false);
  assert.equal(again.keyId, first.keyId);
  const trusted = await loadTrustedKeys(join(home, 'keys'));
  assert.ok(trusted.has(first.keyId));
  assert.match(await readFile(first.publicPath, 'utf8'), /BEGIN PUBLIC KEY/);
});

test('signing - a signed command verifies once; the same nonce again is a replay', async () => {
  const key = await keyPair();
  const c = ctx(key);
  const signed = signCommand(command(), key);
  const first = await verifyCommand(signed, c);
  assert.equal(first.ok, true);
  const second = await verifyCommand(signed, c);
  assert.deepEqual([second.ok, !second.ok && second.reason], [false, 'replayed']);
});

test('signing - a tampered command fails the signature check', async () => {
  const key = await keyPair();
  const signed = signCommand(command(), key);
  const tampered = { ...signed, command: { ...signed.command, toVersion: '0.0.1' } };
  const result = await verifyCommand(tampered, ctx(key));
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.reason, 'bad-signature');
});

test('signing - a key the node does not trust is refused as unknown', async () => {
  const trusted = await keyPair();
  const rogue = await keyPair();
  const result = await verifyCommand(signCommand(command(), rogue), ctx(trusted));
  assert.equal(!result.ok && result.reason, 'unknown-key');
});

test('signing - a forged signature under the trusted key id is refused', async () => {
  const trusted = await keyPair();
  const rogue = await keyPair();
  const forged = { ...signCommand(command(), rogue), keyId: trusted.keyId };
  const result = await verifyCommand(forged, ctx(trusted));
  assert.equal(!result.ok && result.reason, 'bad-signature');
});

test('signing - an expired command is refused, a fresh one is not', async () => {
  const key = await keyPair();
  const expired = signCommand(
    command({
      issuedAt: new Date(NOW - 3_600_000).toISOString(),
      expiresAt: new Date(NOW - 120_000).toISOString(),
    }),
    key,
  );
  const result = await verifyCommand(expired, ctx(key));
  assert.equal(!result.ok && result.reason, 'expired');
});

test('signing - a command for another node is refused and does not burn its nonce', async () => {
  const key = await keyPair();
  const signed = signCommand(command(), key);
  const nonces = createMemoryNonceStore(() => NOW);
  const wrong = await verifyCommand(signed, { ...ctx(key, 'n-2'), nonces });
  assert.equal(!wrong.ok && wrong.reason, 'wrong-node');
  assert.equal(nonces.size(), 0);
});

test('signing - malformed input is refused with the field named', async () => {
  const key = await keyPair();
  const result = await verifyCommand({ command: { type: 'Upgrade' }, keyId: 'x', signature: 'y' }, ctx(key));
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.reason, 'malformed');
  assert.match(!result.ok ? result.message : '', /keyId: expected a 16-hex-digit key id/);
  assert.equal((await verifyCommand('not even an object', ctx(key))).ok, false);
});

test('signing - the signature covers a canonical encoding, so key order does not matter', async () => {
  const key = await keyPair();
  const signed = signCommand(command(), key);
  const reordered = Object.fromEntries(Object.entries(signed.command).reverse());
  const result = await verifyCommand(
    { signature: signed.signature, keyId: signed.keyId, command: reordered },
    ctx(key),
  );
  assert.equal(result.ok, true);
});

test('signing - an upgrade command needs its manifest digest and image', async () => {
  const key = await keyPair();
  assert.throws(() => signCommand(command({ type: 'Upgrade' }), key), /manifestDigest/);
  const ok = signCommand(
    command({
      type: 'Upgrade',
      manifestDigest: digest,
      image: { type: 'oci', reference: 'quay.io/kairos/os:v1', digest, version: '1.1.0' },
    }),
    key,
  );
  assert.equal(ok.command.type, 'Upgrade');
});
