import { access, chmod, copyFile, mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { execaRunner } from '../../runtime/runner.ts';
import { createMeshKey, MESH_KEY_FILE, meshKeyPath } from '../../p2p/mesh-key.ts';
import { parseDuration } from '../../schema/index.ts';
import {
  KeyringError,
  initKeys,
  keyPaths,
  keysDir,
  REVOKED_DIR,
  readKeyring,
  revokeKey,
  rotateKeys,
  signerAt,
} from '../../signing/index.ts';
import { parseFlags, type Command } from '../command.ts';
import { cliConfig, printJson, withNats } from '../context.ts';
import { announceToFleet, type Announcement } from '../key-announcement.ts';
import { openEventLog } from '../../eventlog/index.ts';
import { controlPlaneTrustedKeys, openEnrolmentBucket, retireControlPlaneKey } from '../../trust/index.ts';
import { operator } from './node.ts';
import { OperationFailed, UsageError } from '../usage-error.ts';

const usage = 'slotflow keys init [--force --strand-agents] [--export-public DIR] [--json]';

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
      {
        force: { type: 'boolean' },
        'strand-agents': { type: 'boolean' },
        'export-public': { type: 'string' },
        json: { type: 'boolean' },
      },
      usage,
    );
    const { home } = cliConfig();
    // Without --strand-agents, --force only ever creates a key where there is none.
    const strand = values.force === true && values['strand-agents'] === true;
    const result = await initKeys(home, { force: strand });
    if (values.force && !strand && !result.created) {
      throw new UsageError(
        `a control-plane key already exists (${result.keyId}) and agents trust it; replacing it would leave every agent refusing every command. ` +
          `Run 'slotflow keys rotate' to move agents to a new key, or add --strand-agents to replace it anyway (then copy the new public key to every agent by hand)`,
      );
    }
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
          : `key ${result.keyId} already exists at ${result.privatePath}; run 'slotflow keys rotate' to replace it without stranding agents\n`,
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

/** A duration flag in milliseconds, or a UsageError naming it. */
function durationFlag(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const ms = parseDuration(value);
  if (ms === undefined)
    throw new UsageError(`--${flag}: expected a duration such as 30s, 10m or 1h, got '${value}'`);
  return ms;
}

/** Keyring refusals are the operator's input to fix: exit 2 with the keyring's reason. */
async function keyring<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof KeyringError) throw new UsageError(err.message, { cause: err });
    throw err;
  }
}

const HOUR_MS = 3_600_000;
const rotateUsage = 'slotflow keys rotate [--overlap 1h] [--ttl 12h] [--json]';

/**
 * `slotflow keys rotate`: a new control-plane key, announced to every node of the fleet in a
 * TrustKey command signed by the key that signs now; the new key signs once the overlap is over.
 */
export const keysRotate: Command = {
  path: ['keys', 'rotate'],
  usage: rotateUsage,
  async run(argv) {
    const { values } = parseFlags(
      argv,
      { overlap: { type: 'string' }, ttl: { type: 'string' }, json: { type: 'boolean' } },
      rotateUsage,
    );
    const overlapMs = durationFlag('overlap', values.overlap, HOUR_MS);
    const ttlMs = durationFlag('ttl', values.ttl, 12 * HOUR_MS);
    const config = cliConfig();
    let sent: Announcement | undefined;
    const rotation = await keyring(() =>
      withNats(config, (nc) =>
        rotateKeys(config.home, {
          overlapMs,
          // Agents hear of the key before it joins the keyring: a failed announcement changes nothing.
          announce: async (key) => {
            sent = await announceToFleet(
              nc,
              config.home,
              { type: 'TrustKey', trustKeyId: key.keyId, publicKey: key.publicKeyPem },
              key.announcer,
              ttlMs,
            );
          },
        }),
      ),
    );
    const { created } = rotation;
    if (!sent) throw new Error('the rotation was not announced');
    if (values.json) {
      printJson({
        keyId: created.keyId,
        signsFrom: created.signsFrom,
        announcedBy: rotation.announcer.keyId,
        privatePath: rotation.privatePath,
        publicPath: rotation.publicPath,
        nodes: sent.nodes,
        expiresAt: sent.expiresAt,
      });
      return 0;
    }
    process.stdout.write(
      `created key ${created.keyId}; it signs from ${created.signsFrom} (key ${rotation.announcer.keyId} signs until then)\n` +
        `  announced to ${sent.nodes.length} node(s) in a TrustKey command signed by ${rotation.announcer.keyId}, valid until ${sent.expiresAt}\n` +
        `  public: ${rotation.publicPath} — agents set up from now on need it in their trusted keys\n` +
        `  once it signs, retire the old key: slotflow keys revoke ${rotation.announcer.keyId}\n`,
    );
    return 0;
  },
};

const revokeUsage = 'slotflow keys revoke KEYID [--ttl 12h] [--json]';

/**
 * `slotflow keys revoke KEYID`: retires a key (never signs again, private key deleted) and tells
 * every node, in a RevokeKey command signed by the key that signs now, to refuse it.
 */
export const keysRevoke: Command = {
  path: ['keys', 'revoke'],
  usage: revokeUsage,
  async run(argv) {
    const { values, positionals } = parseFlags(
      argv,
      { ttl: { type: 'string' }, json: { type: 'boolean' } },
      revokeUsage,
      { positionals: 1 },
    );
    const keyId = positionals[0];
    if (keyId === undefined || !/^[0-9a-f]{16}$/.test(keyId)) {
      throw new UsageError(
        `expected the key id to revoke (16 hex digits, see 'slotflow keys list'), got ${keyId === undefined ? 'none' : `'${keyId}'`}\nusage: ${revokeUsage}`,
      );
    }
    const ttlMs = durationFlag('ttl', values.ttl, 12 * HOUR_MS);
    const config = cliConfig();
    const revocation = await keyring(() => revokeKey(config.home, keyId));
    const trustedKeys = await controlPlaneTrustedKeys(config.home, { retired: true });
    const { retirement, sent } = await withNats(config, async (nc) => {
      // Certificates it signed are re-issued first, while agents still trust it, so every
      // enrolled node holds one its peers accept once they refuse the retired key.
      const retirement = await retireControlPlaneKey(
        {
          log: await openEventLog(nc),
          certificates: await openEnrolmentBucket(nc),
          key: revocation.signer,
          trustedKeys,
          by: operator(),
        },
        keyId,
      );
      const sent = await announceToFleet(
        nc,
        config.home,
        { type: 'RevokeKey', revokeKeyId: keyId },
        revocation.signer,
        ttlMs,
      );
      return { retirement, sent };
    });
    if (values.json) {
      printJson({
        keyId,
        revokedAt: revocation.revoked.revokedAt,
        already: revocation.already,
        signedBy: revocation.signer.keyId,
        retiredAtSeq: retirement.seq,
        recertified: retirement.recertified,
        nodes: sent.nodes,
        expiresAt: sent.expiresAt,
      });
      return 0;
    }
    process.stdout.write(
      `${revocation.already ? 'key was already revoked; announced again' : `revoked key ${keyId}`}: ` +
        `${sent.nodes.length} node(s) told to refuse it (RevokeKey signed by ${revocation.signer.keyId}, valid until ${sent.expiresAt}); ` +
        `${retirement.recertified.length} enrolment certificate(s) it had signed re-issued; retired in the event log at sequence ${retirement.seq}\n`,
    );
    return 0;
  },
};

const listUsage = 'slotflow keys list [--json]';

/** `slotflow keys list`: the keyring: every control-plane key, when it signs, which one signs now. */
export const keysList: Command = {
  path: ['keys', 'list'],
  usage: listUsage,
  async run(argv) {
    const { values } = parseFlags(argv, { json: { type: 'boolean' } }, listUsage);
    const { home } = cliConfig();
    const ring = await readKeyring(home);
    const now = new Date();
    const signing = await keyring(async () => signerAt(ring, now).keyId);
    const keys = ring.keys.map((k) => ({
      ...k,
      state: k.revokedAt
        ? 'revoked'
        : k.keyId === signing
          ? 'signing'
          : Date.parse(k.signsFrom) > now.getTime()
            ? 'next'
            : 'retiring',
      publicPath: k.revokedAt
        ? join(keysDir(home), REVOKED_DIR, `${k.file}.pub`)
        : keyPaths(home, k).publicPath,
    }));
    if (values.json) {
      printJson({ signing, keys });
      return 0;
    }
    for (const k of keys) {
      process.stdout.write(
        `${k.keyId}  ${k.state.padEnd(8)}  signs from ${k.signsFrom}${k.revokedAt ? `, revoked ${k.revokedAt}` : ''}\n`,
      );
    }
    return 0;
  },
};
