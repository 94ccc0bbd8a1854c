import { readFile, stat } from 'node:fs/promises';
import { generateKey } from '@libp2p/pnet';
import { MeshKeyError } from './errors.ts';
import { writeKeyFile } from './peer-key-file.ts';

export { MESH_KEY_FILE, meshKeyPath } from './mesh-key-path.ts';

// libp2p's swarm key format (go-ipfs `swarm.key`): a header, an encoding line, 32 bytes in hex.
const SWARM_KEY = /^\/key\/swarm\/psk\/1\.0\.0\/\r?\n\/base16\/\r?\n[0-9a-fA-F]{64}\s*$/;

/**
 * Creates a mesh pre-shared key at `path` (mode 0600) unless one exists; `force` replaces it
 * (every agent must then get the new file, or it can no longer reach its peers).
 */
export async function createMeshKey(
  path: string,
  { force = false } = {},
): Promise<{ path: string; created: boolean }> {
  if (!force) {
    try {
      await loadMeshKey(path);
      return { path, created: false };
    } catch (err) {
      if (!(err instanceof MeshKeyError && (err.cause as NodeJS.ErrnoException)?.code === 'ENOENT'))
        throw err;
    }
  }
  const bytes = new Uint8Array(95);
  generateKey(bytes);
  await writeKeyFile(path, bytes);
  return { path, created: true };
}

/**
 * Loads the mesh pre-shared key. Anyone holding it can join the mesh's transport, so a file
 * that group or others can read is refused, as for the peer key.
 */
export async function loadMeshKey(path: string): Promise<Uint8Array> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new MeshKeyError(
      `cannot read the mesh key ${path}: ${(err as Error).message}; create it with 'slotflow keys mesh-init' ` +
        `on the control plane and copy $SLOTFLOW_HOME/keys/mesh.psk to every agent (mode 600)`,
      { cause: err },
    );
  }
  const mode = (await stat(path)).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new MeshKeyError(
      `mesh key ${path} has mode ${mode.toString(8)}, expected 600 (readable by its owner only); run chmod 600 ${path}`,
    );
  }
  if (!SWARM_KEY.test(bytes.toString('utf8'))) {
    throw new MeshKeyError(
      `${path}: expected a libp2p swarm key ('/key/swarm/psk/1.0.0/', '/base16/', 64 hex digits); ` +
        `create one with 'slotflow keys mesh-init'`,
    );
  }
  return new Uint8Array(bytes);
}
