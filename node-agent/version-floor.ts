import { VERSION_FLOOR_VERSION, VersionFloorFile, compareVersions } from '../schema/index.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { readStateFile } from './state-file.ts';

/** The node's persistent minimum version (anti-rollback floor); it only ever goes up. */
export interface VersionFloor {
  /** The floor, or undefined before the node committed anything. */
  current(): string | undefined;
  /** Raises the floor to `version` when that is newer (written atomically first); true if raised. */
  raise(version: string, now?: Date): Promise<boolean>;
}

/** Opens the floor kept in `file` (none yet is fine: the running version is the floor then). */
export async function openVersionFloor(file: string): Promise<VersionFloor> {
  let floor = (await readStateFile(file, VersionFloorFile, 'minimum-version file'))?.version;
  // Raises come from the executor and the inbox; one write at a time keeps the file monotonic.
  let writing: Promise<unknown> = Promise.resolve();
  return {
    current: () => floor,
    raise(version, now = new Date()) {
      const next = writing.then(async () => {
        if (floor !== undefined && compareVersions(version, floor) <= 0) return false;
        const data: VersionFloorFile = { v: VERSION_FLOOR_VERSION, version, raisedAt: now.toISOString() };
        await writeFileAtomic(file, `${JSON.stringify(data, null, 2)}\n`);
        floor = version;
        return true;
      });
      writing = next.catch(() => undefined);
      return next;
    },
  };
}
