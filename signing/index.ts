// Public surface of command signing: ed25519 over the canonical encoding (node:crypto).
export * from './keys.ts';
export * from './keyring.ts';
export * from './nonce-store.ts';
export * from './sign.ts';
export * from './verify.ts';
export * from './plan.ts';
export * from './node-identity.ts';
export * from './trust-events.ts';
