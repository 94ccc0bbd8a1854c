// Where the mesh key lives, apart from the code that makes and reads it: the agent's
// configuration names the path without loading libp2p.
import { join } from 'node:path';

/** File name of the fleet's mesh pre-shared key, under `$SLOTFLOW_HOME/keys`. */
export const MESH_KEY_FILE = 'mesh.psk';

/** Where the control plane keeps the mesh pre-shared key: `<home>/keys/mesh.psk`. */
export function meshKeyPath(home: string): string {
  return join(home, 'keys', MESH_KEY_FILE);
}
