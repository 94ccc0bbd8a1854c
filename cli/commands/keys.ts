import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { initKeys } from '../../signing/index.ts';
import { parseFlags, type Command } from '../command.ts';
import { cliConfig, printJson } from '../context.ts';

const usage = 'slotflow keys init [--force] [--export-public DIR] [--json]';

/** `slotflow keys init`: the control plane's ed25519 key pair under SLOTFLOW_HOME. */
export const keysInit: Command = {
  path: ['keys', 'init'],
  usage,
  async run(argv) {
    const { values } = parseFlags(
      argv,
      { force: { type: 'boolean' }, 'export-public': { type: 'string' }, json: { type: 'boolean' } },
      usage,
    );
    const { home } = cliConfig();
    const result = await initKeys(home, { force: values.force ?? false });
    // Agents need only the public key: a separate directory keeps the private key off nodes.
    const exported = values['export-public'] ? join(values['export-public'], 'control-plane.pub') : undefined;
    if (exported) {
      await mkdir(values['export-public'] as string, { recursive: true });
      await copyFile(result.publicPath, exported);
    }
    if (values.json) {
      printJson({ ...result, ...(exported ? { exportedPublic: exported } : {}) });
    } else {
      process.stdout.write(
        result.created
          ? `created key ${result.keyId}\n  private: ${result.privatePath} (mode 0600)\n  public:  ${result.publicPath} — copy it to every agent's trusted keys\n`
          : `key ${result.keyId} already exists at ${result.privatePath}; use --force to replace it (agents must then trust the new public key)\n`,
      );
    }
    return 0;
  },
};
