import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { vouchedPeerId } from '../../activities/plan.ts';
import { initKeys, loadSigningKey, trustKeys } from '../../signing/index.ts';
import { issueEnrolment, nodeIdentityFromPeerKey } from '../../signing/node-identity.ts';
import { cleanupDirs, tempDir } from '../p2p/helpers.ts';

async function controlPlane() {
  const home = await tempDir('slotflow-plan-pins-');
  await initKeys(home);
  return loadSigningKey(home);
}

test('plan pins - a node is pinned only to the peer its enrolment certificate vouches for', async (t) => {
  t.after(cleanupDirs);
  const key = await controlPlane();
  const trusted = trustKeys(key.publicKey);
  const node = nodeIdentityFromPeerKey(await generateKeyPair('Ed25519'));
  const other = nodeIdentityFromPeerKey(await generateKeyPair('Ed25519'));
  const cert = issueEnrolment({ nodeId: 'n-1', publicKey: node.publicKey }, key);

  assert.equal(
    vouchedPeerId('n-1', { peerId: node.peerId }, { status: 'enrolled', certificate: cert }, trusted),
    node.peerId,
  );
  assert.equal(
    vouchedPeerId('n-1', { peerId: node.peerId }, { status: 'enrolled' }, trusted),
    undefined,
    'no certificate',
  );
  assert.equal(
    vouchedPeerId('n-1', { peerId: other.peerId }, { status: 'enrolled', certificate: cert }, trusted),
    undefined,
    'a peer id the certificate does not name',
  );
  assert.equal(
    vouchedPeerId('n-2', { peerId: node.peerId }, { status: 'enrolled', certificate: cert }, trusted),
    undefined,
    'another node’s certificate',
  );
  const forged = issueEnrolment({ nodeId: 'n-1', publicKey: node.publicKey }, await controlPlane());
  assert.equal(
    vouchedPeerId('n-1', { peerId: node.peerId }, { status: 'enrolled', certificate: forged }, trusted),
    undefined,
    'signed by a key the control plane does not trust',
  );
  assert.equal(
    vouchedPeerId('n-1', { peerId: node.peerId }, { status: 'revoked', certificate: cert }, trusted),
    undefined,
    'a revoked node',
  );
  assert.equal(vouchedPeerId('n-1', undefined, undefined, trusted), undefined);
});
