import { randomBytes, sign } from 'node:crypto';
import {
  AnyCommand,
  canonicalBytes,
  parseWith,
  type AnyCommandInput,
  type SignedCommand,
} from '../schema/index.ts';
import type { SigningKey } from './keys.ts';

/** A fresh single-use nonce (24 random bytes, base64url). */
export function newNonce(): string {
  return randomBytes(24).toString('base64url');
}

/** Validates a command and signs its canonical encoding with the control plane's key. */
export function signCommand(input: AnyCommandInput, key: SigningKey): SignedCommand {
  const command = parseWith(AnyCommand, input, 'command');
  const signature = sign(null, canonicalBytes(command), key.privateKey).toString('base64');
  return { command, keyId: key.keyId, signature };
}
