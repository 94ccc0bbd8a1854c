import type { KeyObject } from 'node:crypto';
import { AGENT_TRUST_VERSION, AgentTrustFile, type KeyCommand } from '../schema/index.ts';
import { keyIdOf, parsePublicKey, type TrustedKeys } from '../signing/index.ts';
import { StateFileError } from './errors.ts';
import { writeFileAtomic } from './atomic-file.ts';
import type { KeyView } from './key-decision.ts';
import { readStateFile } from './state-file.ts';

/** The control-plane keys an agent trusts now, kept across restarts. */
export interface TrustStore {
  /**
   * Bootstrap keys plus announced ones, minus revoked ones. Always the same Map object, changed
   * in place, so every holder (inbox, plan book, gossip validation) sees a rotation at once.
   */
  readonly keys: TrustedKeys;
  /** Keys the node refuses, whatever the bootstrap directory holds. */
  readonly revoked: ReadonlySet<string>;
  view(): KeyView;
  /** Trusts an announced key: written to the file (atomically) before it takes effect. */
  trust(command: KeyCommand & { type: 'TrustKey' }, signedBy: string, now?: Date): Promise<void>;
  /** Revokes a key: written to the file (atomically) before it takes effect. */
  revoke(command: KeyCommand & { type: 'RevokeKey' }, signedBy: string, now?: Date): Promise<void>;
}

/**
 * Opens the agent's trusted-keys file on top of the bootstrap keys (the `*.pub` directory): keys
 * announced since are added, revoked ones removed, so a rotation survives a restart.
 */
export async function openTrustStore(init: { file: string; bootstrap: TrustedKeys }): Promise<TrustStore> {
  const saved = (await readStateFile(init.file, AgentTrustFile, 'trusted-keys file')) ?? {
    v: AGENT_TRUST_VERSION,
    trusted: [],
    revoked: [],
  };
  let data: AgentTrustFile = saved;
  const keys = new Map<string, KeyObject>(init.bootstrap);
  data.trusted.forEach((t, i) => {
    const key = parsePublicKey(t.publicKey, `${init.file} (key ${t.keyId})`);
    // The id is what commands name their signer by: a key must never answer to another key's id.
    if (keyIdOf(key) !== t.keyId) {
      throw new StateFileError(
        `${init.file}: trusted[${i}].keyId is ${t.keyId}, but its publicKey has id ${keyIdOf(key)}; the file was changed by hand or damaged — restore it from a backup, or remove the entry and announce the key again`,
      );
    }
    keys.set(t.keyId, key);
  });
  const revoked = new Set(data.revoked.map((r) => r.keyId));
  for (const id of revoked) keys.delete(id);

  let writing: Promise<unknown> = Promise.resolve();
  const save = (next: AgentTrustFile) => {
    const done = writing.then(async () => {
      await writeFileAtomic(init.file, `${JSON.stringify(next, null, 2)}\n`);
      data = next;
    });
    writing = done.catch(() => undefined);
    return done;
  };

  return {
    keys,
    revoked,
    view: () => ({ trusted: new Set(keys.keys()), revoked }),
    async trust(command, signedBy, now = new Date()) {
      const id = command.trustKeyId;
      const key = parsePublicKey(command.publicKey, `TrustKey ${command.commandId}`);
      if (!data.trusted.some((t) => t.keyId === id)) {
        await save({
          ...data,
          trusted: [
            ...data.trusted,
            { keyId: id, publicKey: command.publicKey, trustedAt: now.toISOString(), announcedBy: signedBy },
          ],
        });
      }
      keys.set(id, key);
    },
    async revoke(command, signedBy, now = new Date()) {
      const id = command.revokeKeyId;
      if (!data.revoked.some((r) => r.keyId === id)) {
        await save({
          ...data,
          trusted: data.trusted.filter((t) => t.keyId !== id),
          revoked: [...data.revoked, { keyId: id, revokedAt: now.toISOString(), revokedBy: signedBy }],
        });
      }
      revoked.add(id);
      keys.delete(id);
    },
  };
}
