import { access, chmod, copyFile, mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { execaRunner } from '../../runtime/runner.ts';
import { createMeshKey, MESH_KEY_FILE, meshKeyPath } from '../../p2p/mesh-key.ts';
import { initKeys } from '../../signing/index.ts';
import { parseFlags, type Command } from '../command.ts';
import { cliConfig, printJson } from '../context.ts';
import { OperationFailed, UsageError } from '../usage-error.ts';

const usage = 'slotflow keys init [--force] [--export-public DIR] [--json]';

/**
 * `slotflow keys init`: the control plane's ed25519 key pair under SLOTFLOW_HOME, and the mesh
 * pre-shared key beside it when there is none yet (`keys mesh-init` makes or replaces it alone).
 */
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
    const mesh = await createMeshKey(meshKeyPath(home));
    // Agents need only the public key (and the mesh key): a separate directory keeps the private
    // key off nodes.
    const exported = values['export-public'] ? join(values['export-public'], 'control-plane.pub') : undefined;
    if (exported) {
      await mkdir(values['export-public'] as string, { recursive: true });
      await copyFile(result.publicPath, exported);
      const meshCopy = join(values['export-public'] as string, MESH_KEY_FILE);
      await copyFile(mesh.path, meshCopy);
      await chmod(meshCopy, 0o600);
    }
    if (values.json) {
      printJson({ ...result, meshKeyPath: mesh.path, ...(exported ? { exportedPublic: exported } : {}) });
    } else {
      process.stdout.write(
        result.created
          ? `created key ${result.keyId}\n  private: ${result.privatePath} (mode 0600)\n  public:  ${result.publicPath} — copy it to every agent's trusted keys\n`
          : `key ${result.keyId} already exists at ${result.privatePath}; use --force to replace it (agents must then trust the new public key)\n`,
      );
      if (mesh.created) {
        process.stdout.write(
          `created the mesh key ${mesh.path} (mode 0600) — copy it to every agent (--mesh-key FILE)\n`,
        );
      }
    }
    return 0;
  },
};

const raucUsage = 'slotflow keys rauc-init [--out DIR] [--subject NAME] [--days N] [--force] [--json]';

/**
 * `slotflow keys rauc-init`: a self-signed X.509 key and certificate (EC P-256, made by openssl)
 * to sign RAUC bundles in trials. The certificate is its own trust anchor: it goes into the
 * nodes' RAUC keyring. A fleet in production signs with a key its own CA certified.
 */
export const keysRaucInit: Command = {
  path: ['keys', 'rauc-init'],
  usage: raucUsage,
  async run(argv) {
    const { values } = parseFlags(
      argv,
      {
        out: { type: 'string' },
        subject: { type: 'string' },
        days: { type: 'string' },
        force: { type: 'boolean' },
        json: { type: 'boolean' },
      },
      raucUsage,
    );
    const days = values.days ?? '365';
    if (!/^[1-9]\d{0,4}$/.test(days))
      throw new UsageError(`--days: expected a whole number of days, got '${days}'`);
    const subject = values.subject ?? 'slotflow RAUC trial signer';
    if (!/^[\w .-]{1,64}$/.test(subject)) {
      throw new UsageError(
        `--subject: expected up to 64 letters, digits, spaces, '.', '-' or '_', got '${subject}'`,
      );
    }
    const dir = resolve(values.out ?? join(cliConfig().home, 'rauc'));
    const cert = join(dir, 'rauc-signer.cert.pem');
    const key = join(dir, 'rauc-signer.key.pem');
    const exists = await access(key).then(
      () => true,
      () => false,
    );
    if (exists && !values.force) {
      if (values.json) printJson({ created: false, cert, key });
      else process.stdout.write(`a RAUC signing key already exists at ${key}; use --force to replace it\n`);
      return 0;
    }
    await mkdir(dir, { recursive: true });
    await rm(key, { force: true });
    const result = await execaRunner.run(
      'openssl',
      [
        ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
        ...['-keyout', key, '-out', cert, '-days', days, '-subj', `/O=slotflow/CN=${subject}`],
        ...['-addext', 'basicConstraints=critical,CA:true'],
        ...['-addext', 'keyUsage=critical,digitalSignature,keyCertSign'],
      ],
      { timeoutMs: 60_000 },
    );
    if (!result.ok) {
      throw new OperationFailed(
        `openssl could not make the key pair: ${result.failure}; install openssl (apt-get install openssl)`,
      );
    }
    await chmod(key, 0o600);
    if (values.json) printJson({ created: true, cert, key });
    else {
      process.stdout.write(
        `created a self-signed RAUC signing pair (for trials)\n  certificate: ${cert} — put it in the nodes' RAUC keyring ([keyring] path= in system.conf)\n  key:         ${key} (mode 0600)\n  sign with:   slotflow image build … --format rauc --rauc-cert ${cert} --rauc-key ${key} --rauc-compatible <system.conf compatible>\n`,
      );
    }
    return 0;
  },
};
