import { generateKeyPairSync } from 'node:crypto';
import { keyIdOf, type SigningKey } from '../signing/index.ts';

/** A control-plane key held in memory, to enrol the nodes of a benchmark's event story. */
export function benchControlPlaneKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { keyId: keyIdOf(publicKey), privateKey, publicKey };
}
