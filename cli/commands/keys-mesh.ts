import { chmod, copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createMeshKey, MESH_KEY_FILE, meshKeyPath } from '../../p2p/mesh-key.ts';
import { parseFlags, type Command } from '../command.ts';
import { cliConfig, printJson } from '../context.ts';

const usage = 'slotflow keys mesh-init [--force] [--export DIR] [--json]';

/**
 * `slotflow keys mesh-init`: the fleet's mesh pre-shared key at `$SLOTFLOW_HOME/keys/mesh.psk`
 * (mode 0600). Every agent needs a copy (`--mesh-key FILE`); peers without it cannot connect.
 */
export const keysMeshInit: Command = {
  path: ['keys', 'mesh-init'],
  usage,
  async run(argv) {
    const { values } = parseFlags(
      argv,
      { force: { type: 'boolean' }, export: { type: 'string' }, json: { type: 'boolean' } },
      usage,
    );
    const { home } = cliConfig();
    const result = await createMeshKey(meshKeyPath(home), { force: values.force ?? false });
    let exported: string | undefined;
    if (values.export) {
      await mkdir(values.export, { recursive: true });
      exported = join(values.export, MESH_KEY_FILE);
      await copyFile(result.path, exported);
      await chmod(exported, 0o600);
    }
    if (values.json) {
      printJson({ ...result, ...(exported ? { exported } : {}) });
    } else {
      process.stdout.write(
        (result.created
          ? `created the mesh key ${result.path} (mode 0600) — copy it to every agent and pass --mesh-key FILE\n`
          : `the mesh key ${result.path} already exists; use --force to replace it (every agent then needs the new file)\n`) +
          (exported ? `  exported: ${exported}\n` : ''),
      );
    }
    return 0;
  },
};
