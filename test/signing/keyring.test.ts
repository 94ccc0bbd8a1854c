import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access, mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  KeyringError,
  createMemoryNonceStore,
  initKeys,
  keyringSigner,
  keysDir,
  loadSigningKey,
  loadTrustedKeys,
  newNonce,
  readKeyring,
  revokeKey,
  rotateKeys,
  signCommand,
  trustKeys,
  verifyCommand,
} from '../../signing/index.ts';

const T0 = new Date('2026-11-22T10:00:00.000Z');
const at = (ms: number) => new Date(T0.getTime() + ms);

async function home(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'slotflow-keyring-'));
  await initKeys(dir);
  return dir;
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

test('keyring - a home from before keyrings is a keyring of its one key', async () => {
  const dir = await home();
  const ring = await readKeyring(dir);
  const key = await loadSigningKey(dir);
  assert.deepEqual(
    ring.keys.map((k) => k.keyId),
    [key.keyId],
  );
});

test('keyring - after a rotation the old key signs until the overlap has passed, then the new one', async () => {
  const dir = await home();
  const old = await loadSigningKey(dir);
  const rotation = await rotateKeys(dir, { overlapMs: 60_000, now: T0 });
  assert.equal(rotation.announcer.keyId, old.keyId, 'the announcement is signed by the key agents trust');
  assert.notEqual(rotation.created.keyId, old.keyId);
  assert.equal((await loadSigningKey(dir, at(59_999))).keyId, old.keyId);
  assert.equal((await loadSigningKey(dir, at(60_000))).keyId, rotation.created.keyId);
  // The schedule is on disk: a new process reads the same answer.
  const ring = JSON.parse(await readFile(join(keysDir(dir), 'keyring.json'), 'utf8')) as {
    keys: { keyId: string; signsFrom: string }[];
  };
  assert.equal(ring.keys[1]?.signsFrom, at(60_000).toISOString());
  // New agents set up from the keys directory trust both keys during the overlap.
  assert.deepEqual(
    [...(await loadTrustedKeys(keysDir(dir))).keys()].sort(),
    [old.keyId, rotation.created.keyId].sort(),
  );
});

test('keyring - the key that signs now cannot be revoked; once its successor signs it can', async () => {
  const dir = await home();
  const old = await loadSigningKey(dir);
  await assert.rejects(
    revokeKey(dir, old.keyId, T0),
    (err: Error) =>
      err instanceof KeyringError &&
      /is the key that signs now; run 'slotflow keys rotate' first/.test(err.message),
  );
  const rotation = await rotateKeys(dir, { overlapMs: 60_000, now: T0 });
  await assert.rejects(
    revokeKey(dir, old.keyId, at(1_000)),
    (err: Error) =>
      err instanceof KeyringError &&
      err.message.includes(
        `signs until ${at(60_000).toISOString()}, when key ${rotation.created.keyId} takes over`,
      ),
  );
  const revoked = await revokeKey(dir, old.keyId, at(60_000));
  assert.equal(
    revoked.signer.keyId,
    rotation.created.keyId,
    'the revocation is signed by the key that stays',
  );
  assert.equal(revoked.already, false);
  assert.equal(await exists(join(keysDir(dir), 'control-plane.key')), false, 'the private key is gone');
  assert.equal(await exists(join(keysDir(dir), 'revoked', 'control-plane.pub')), true);
  assert.deepEqual([...(await loadTrustedKeys(keysDir(dir))).keys()], [rotation.created.keyId]);
  // Even a moment that would have been the old key's again never picks it.
  assert.equal((await loadSigningKey(dir, at(60_001))).keyId, rotation.created.keyId);
  assert.equal((await revokeKey(dir, old.keyId, at(70_000))).already, true);
  await assert.rejects(
    revokeKey(dir, 'ffffffffffffffff', at(70_000)),
    /no key ffffffffffffffff in the keyring/,
  );
});

test('keyring - a long-running signer follows a rotation made by another process', async () => {
  const dir = await home();
  const signer = keyringSigner(dir);
  const old = await signer.current();
  const rotation = await rotateKeys(dir, { overlapMs: 0 });
  assert.equal((await signer.current()).keyId, rotation.created.keyId);
  assert.notEqual(old.keyId, rotation.created.keyId);
});

test('keyring - init without force keeps the keyring; init with force replaces it (the CLI guards it)', async () => {
  const dir = await home();
  const rotation = await rotateKeys(dir, { overlapMs: 0 });
  const again = await initKeys(dir);
  assert.equal(again.created, false);
  assert.equal(again.keyId, rotation.created.keyId, 'init reports the key that signs now');
  const replaced = await initKeys(dir, { force: true });
  assert.equal(replaced.created, true);
  assert.deepEqual(
    (await readKeyring(dir)).keys.map((k) => k.keyId),
    [replaced.keyId],
  );
});

function rollback(nodeId: string, lifetimeMs: number, now = T0) {
  return {
    v: 1 as const,
    type: 'Rollback' as const,
    commandId: `r-1:${nodeId}:rollback`,
    nonce: newNonce(),
    issuedAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + lifetimeMs).toISOString(),
    nodeId,
    rolloutId: 'r-1',
  };
}

test('verify - a command valid for longer than the bound is refused, one within it is not', async () => {
  const key = await loadSigningKey(await home());
  const ctx = (maxLifetimeMs?: number) => ({
    trustedKeys: trustKeys(key.publicKey),
    nodeId: 'n-1',
    nonces: createMemoryNonceStore(() => T0.getTime()),
    now: T0,
    ...(maxLifetimeMs === undefined ? {} : { maxLifetimeMs }),
  });
  const day = 86_400_000;
  const tooLong = await verifyCommand(signCommand(rollback('n-1', day + 120_000), key), ctx());
  assert.equal(tooLong.ok, false);
  assert.equal(!tooLong.ok && tooLong.reason, 'expiry-too-far');
  assert.match(!tooLong.ok ? tooLong.message : '', /further out than this node accepts \(86400 s from now\)/);
  assert.equal((await verifyCommand(signCommand(rollback('n-1', day), key), ctx())).ok, true);
  const short = await verifyCommand(signCommand(rollback('n-1', 3_600_000), key), ctx(600_000));
  assert.equal(!short.ok && short.reason, 'expiry-too-far', 'the bound is configurable');
});

test('verify - a command signed by a revoked key is refused as revoked even if the key is still listed', async () => {
  const key = await loadSigningKey(await home());
  const result = await verifyCommand(signCommand(rollback('n-1', 60_000), key), {
    trustedKeys: trustKeys(key.publicKey),
    revokedKeys: new Set([key.keyId]),
    nodeId: 'n-1',
    nonces: createMemoryNonceStore(() => T0.getTime()),
    now: T0,
  });
  assert.equal(!result.ok && result.reason, 'revoked-key');
});

test('keyring - a rotation whose announcement fails changes nothing', async () => {
  const dir = await home();
  const before = await readKeyring(dir);
  let paths: string[] = [];
  await assert.rejects(
    rotateKeys(dir, {
      overlapMs: 0,
      announce: async (key) => {
        paths = [key.privatePath, key.publicPath];
        assert.equal(await exists(key.privatePath), true);
        throw new Error('NATS is unreachable');
      },
    }),
    /NATS is unreachable/,
  );
  assert.deepEqual(await readKeyring(dir), before);
  for (const path of paths) assert.equal(await exists(path), false, `${path} removed`);
});
