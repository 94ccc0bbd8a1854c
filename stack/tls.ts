import { access, chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execaRunner, type Runner } from '../runtime/runner.ts';
import { SecurityMaterialError } from './errors.ts';

/** The files of the stack's private certificate authority and the server certificate it signed. */
export interface TlsFiles {
  /** The CA certificate clients trust (NATS_TLS_CA). */
  readonly ca: string;
  readonly caKey: string;
  /** The server certificate and its key, for nats-server. */
  readonly cert: string;
  readonly key: string;
}

/**
 * The names the server certificate is valid for: loopback, `nats` on the compose network, and
 * 10.0.2.100, the address QEMU lab guests reach the host's nats-server at.
 */
export const DEFAULT_SERVER_NAMES: readonly string[] = ['localhost', '127.0.0.1', 'nats', '10.0.2.100'];

/** Where the TLS files live inside a directory. */
export function tlsPaths(dir: string): TlsFiles {
  return {
    ca: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca.key'),
    cert: join(dir, 'server.pem'),
    key: join(dir, 'server.key'),
  };
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

function subjectAltName(names: readonly string[]): string {
  return names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
}

/**
 * Makes a CA and a server certificate for `names` under `dir` with openssl (EC P-256), unless
 * both are there already: the CA clients trust stays the same across restarts. Keys are 0600.
 */
export async function ensureTlsFiles(
  dir: string,
  options: { names?: readonly string[]; runner?: Runner } = {},
): Promise<TlsFiles> {
  const files = tlsPaths(dir);
  const runner = options.runner ?? execaRunner;
  const names = options.names ?? DEFAULT_SERVER_NAMES;
  if ((await Promise.all(Object.values(files).map(exists))).every(Boolean)) return files;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const openssl = async (args: string[]) => {
    const r = await runner.run('openssl', args, { timeoutMs: 30_000 });
    if (!r.ok) {
      throw new SecurityMaterialError(
        `expected openssl to make the stack's TLS certificates in ${dir}, but ${r.failure}: ${r.stderr.trim()}; install openssl (apt-get install openssl)`,
      );
    }
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  if (!(await exists(files.ca)) || !(await exists(files.caKey))) {
    await openssl([
      ...['req', '-x509', ...ec, '-keyout', files.caKey, '-out', files.ca, '-days', '3650'],
      ...['-subj', '/O=slotflow/CN=slotflow local CA'],
      ...['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    ]);
  }
  const csr = join(dir, 'server.csr');
  const ext = join(dir, 'server.ext');
  await openssl(['req', ...ec, '-keyout', files.key, '-out', csr, '-subj', '/O=slotflow/CN=localhost']);
  await writeFile(
    ext,
    `subjectAltName=${subjectAltName(names)}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n`,
  );
  await openssl([
    ...['x509', '-req', '-in', csr, '-CA', files.ca, '-CAkey', files.caKey, '-CAcreateserial'],
    ...['-out', files.cert, '-days', '825', '-extfile', ext],
  ]);
  await Promise.all([rm(csr, { force: true }), rm(ext, { force: true })]);
  await Promise.all([chmod(files.caKey, 0o600), chmod(files.key, 0o600)]);
  return files;
}
