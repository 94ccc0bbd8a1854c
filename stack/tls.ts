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
  const openssl = opensslIn(dir, runner);
  if (!(await exists(files.ca)) || !(await exists(files.caKey))) {
    await openssl([
      ...['req', '-x509', ...EC, '-keyout', files.caKey, '-out', files.ca, '-days', '3650'],
      ...['-subj', '/O=slotflow/CN=slotflow local CA'],
      ...['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    ]);
  }
  await signedByCa(openssl, files, {
    cert: files.cert,
    key: files.key,
    commonName: 'localhost',
    extensions: `subjectAltName=${subjectAltName(names)}\nextendedKeyUsage=serverAuth\n`,
  });
  await chmod(files.caKey, 0o600);
  return files;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

type Openssl = (args: string[]) => Promise<void>;

function opensslIn(dir: string, runner: Runner): Openssl {
  return async (args) => {
    const r = await runner.run('openssl', args, { timeoutMs: 30_000 });
    if (!r.ok) {
      throw new SecurityMaterialError(
        `expected openssl to make TLS certificates in ${dir}, but ${r.failure}: ${r.stderr.trim()}; install openssl (apt-get install openssl)`,
      );
    }
  };
}

/** A new EC key and a certificate for it signed by the CA, with the given extensions. */
async function signedByCa(
  openssl: Openssl,
  ca: Pick<TlsFiles, 'ca' | 'caKey'>,
  o: { cert: string; key: string; commonName: string; extensions: string },
): Promise<void> {
  const csr = `${o.cert}.csr`;
  const ext = `${o.cert}.ext`;
  await openssl(['req', ...EC, '-keyout', o.key, '-out', csr, '-subj', `/O=slotflow/CN=${o.commonName}`]);
  await writeFile(ext, `${o.extensions}keyUsage=critical,digitalSignature\n`);
  await openssl([
    ...['x509', '-req', '-in', csr, '-CA', ca.ca, '-CAkey', ca.caKey, '-CAcreateserial'],
    ...['-out', o.cert, '-days', '825', '-extfile', ext],
  ]);
  await Promise.all([rm(csr, { force: true }), rm(ext, { force: true })]);
  await chmod(o.key, 0o600);
}

/**
 * A client certificate signed by the CA in `dir` (made by ensureTlsFiles), for mutual TLS:
 * `<dir>/<name>.pem` and `<dir>/<name>.key` (0600).
 */
export async function issueClientCertificate(
  dir: string,
  name: string,
  runner: Runner = execaRunner,
): Promise<{ cert: string; key: string }> {
  const out = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  await signedByCa(opensslIn(dir, runner), tlsPaths(dir), {
    ...out,
    commonName: name,
    extensions: 'extendedKeyUsage=clientAuth\n',
  });
  return out;
}
