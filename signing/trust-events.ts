import { sign, verify } from 'node:crypto';
import { TrustEvent, canonicalBytes } from '../schema/index.ts';
import type { SigningKey, TrustedKeys } from './keys.ts';

type Unsigned<T> = T extends unknown ? Omit<T, 'issuer'> : never;

/** Signs an enrolment decision with the control plane's key (over its canonical form without `issuer`). */
export function signTrustEvent<E extends TrustEvent>(body: Unsigned<E>, key: SigningKey): E {
  const signature = sign(null, canonicalBytes(body), key.privateKey).toString('base64');
  return TrustEvent.parse({ ...body, issuer: { keyId: key.keyId, signature } }) as E;
}

/** Checks that a trust event was signed by a trusted control-plane key; returns why not. */
export function checkTrustEvent(event: TrustEvent, trusted: TrustedKeys): string | undefined {
  const key = trusted.get(event.issuer.keyId);
  if (!key)
    return `${event.type} ${event.id} is signed by key ${event.issuer.keyId}, not a trusted control-plane key`;
  const { issuer: _issuer, ...body } = event;
  return verify(null, canonicalBytes(body), key, Buffer.from(event.issuer.signature, 'base64'))
    ? undefined
    : `${event.type} ${event.id}: control-plane signature does not match the event`;
}
