import { z } from 'zod';
import { Timestamp } from './ids.ts';
import { KeyId } from './identity.ts';

// Two files hold the control plane's keys over time: the control plane's keyring (which key signs
// when) and each agent's record of the keys it was told to trust or to refuse. Both are versioned
// so a newer slotflow reads an older file and an older one refuses a newer file.

/** Current version of the keyring file (`$SLOTFLOW_HOME/keys/keyring.json`). */
export const KEYRING_VERSION = 1;

/** A PEM (SPKI) public key, as `keys/*.pub` hold it. */
export const PublicKeyPem = z
  .string()
  .max(1024)
  .regex(
    /^-----BEGIN PUBLIC KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END PUBLIC KEY-----\r?\n?$/,
    'expected a PEM (SPKI) public key',
  );

/** One control-plane key pair in the keyring. */
export const KeyringEntry = z
  .object({
    keyId: KeyId,
    /** File name stem under `keys/`: `<file>.key` (mode 0600) and `<file>.pub`. */
    file: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected a file name stem (letters, digits, - or _)'),
    createdAt: Timestamp,
    /** From then on this key signs, until a key with a later `signsFrom` takes over. */
    signsFrom: Timestamp,
    /** Retired: it never signs again and agents were told to refuse it. */
    revokedAt: Timestamp.optional(),
  })
  .strict();
export type KeyringEntry = z.output<typeof KeyringEntry>;

/** The control plane's keys and the schedule of which one signs when. */
export const KeyringFile = z
  .object({
    v: z.literal(KEYRING_VERSION),
    keys: z.array(KeyringEntry).min(1, 'expected at least one key'),
  })
  .strict();
export type KeyringFile = z.output<typeof KeyringFile>;

/** Current version of an agent's trusted-keys file (`<dataDir>/trusted-keys.json`). */
export const AGENT_TRUST_VERSION = 1;

/**
 * What an agent learnt about control-plane keys after it started with the bootstrap keys
 * (`--trusted-keys`): keys announced by TrustKey commands and keys revoked by RevokeKey commands.
 * A revocation wins over the bootstrap directory.
 */
export const AgentTrustFile = z
  .object({
    v: z.literal(AGENT_TRUST_VERSION),
    trusted: z.array(
      z.object({ keyId: KeyId, publicKey: PublicKeyPem, trustedAt: Timestamp, announcedBy: KeyId }),
    ),
    revoked: z.array(z.object({ keyId: KeyId, revokedAt: Timestamp, revokedBy: KeyId })),
  })
  .strict();
export type AgentTrustFile = z.output<typeof AgentTrustFile>;

/** Current version of an agent's minimum-version file (`<dataDir>/version-floor.json`). */
export const VERSION_FLOOR_VERSION = 1;

/**
 * The lowest version the agent installs without an operator-signed downgrade allowance: the
 * newest version it ever committed (Uptane-style anti-rollback). It never goes down.
 */
export const VersionFloorFile = z
  .object({
    v: z.literal(VERSION_FLOOR_VERSION),
    version: z.string().min(1).max(128),
    /** When it was last raised. */
    raisedAt: Timestamp,
  })
  .strict();
export type VersionFloorFile = z.output<typeof VersionFloorFile>;
