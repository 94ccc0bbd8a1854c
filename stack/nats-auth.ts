import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  createAccount,
  createOperator,
  createUser,
  decode,
  encodeAccount,
  encodeOperator,
  encodeUser,
  fmtCreds,
  fromSeed,
  type KeyPair,
} from '@nats-io/jwt';
import { z } from 'zod';
import { SecurityMaterialError } from './errors.ts';
import { permissionsOf, type NatsRole } from './nats-permissions.ts';
import { defaultStackDir } from './paths.ts';
import { ensureTlsFiles } from './tls.ts';
import type { Runner } from '../runtime/runner.ts';

// Decentralized JWT auth as `nsc` sets it up: an operator signs a system account and the SLOTFLOW
// account; the SLOTFLOW account has a separate signing key that signs user JWTs. nats-server
// knows only the operator and the two accounts (a memory resolver preloads them), so a user JWT
// made later (a new node) is accepted without touching the server.

/** The account every slotflow client lives in. */
export const SLOTFLOW_ACCOUNT = 'SLOTFLOW';

const seed = (prefix: string) =>
  z.string().regex(new RegExp(`^S${prefix}[A-Z2-7]{56}$`), `expected an nkey seed starting S${prefix}`);

/** `auth.json`: the seeds everything else is derived from (mode 0600). */
const AuthSeeds = z.object({
  version: z.literal(1),
  operator: seed('O'),
  system: seed('A'),
  account: seed('A'),
  /** Signs user JWTs; the account JWT lists it. */
  accountSigning: seed('A'),
});
type AuthSeeds = z.infer<typeof AuthSeeds>;

/** Where the NATS auth material lives inside its directory. */
export function natsAuthPaths(dir: string) {
  return {
    dir,
    seeds: join(dir, 'auth.json'),
    operatorJwt: join(dir, 'operator.jwt'),
    serverConfig: join(dir, 'nats-server.conf'),
    credsDir: join(dir, 'creds'),
    tlsDir: join(dir, 'tls'),
    /** `issued/<nodeId>/<user public key>`: every user key a node was ever given, for revocation. */
    issuedDir: join(dir, 'issued'),
    /** User public keys the SLOTFLOW account revokes, with when (Unix seconds). */
    revocations: join(dir, 'revocations.json'),
  };
}

/** The stack's NATS auth directory: `$SLOTFLOW_HOME/stack/nats-auth` unless told otherwise. */
export function defaultNatsAuthDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  return join(defaultStackDir(env), 'nats-auth');
}

/** The loaded operator and accounts, with their JWTs. */
export interface NatsAuth {
  readonly dir: string;
  readonly operatorJwt: string;
  readonly systemAccount: { readonly publicKey: string; readonly jwt: string };
  readonly account: { readonly publicKey: string; readonly jwt: string };
  readonly signingKey: KeyPair;
}

const UNLIMITED = {
  subs: -1,
  data: -1,
  payload: -1,
  imports: -1,
  exports: -1,
  wildcards: true,
  conn: -1,
  leaf: -1,
} as const;

async function readSeeds(path: string): Promise<AuthSeeds | undefined> {
  let text: string;
  try {
    const info = await stat(path);
    if ((info.mode & 0o077) !== 0) {
      throw new SecurityMaterialError(
        `expected ${path} to be readable by its owner only (mode 0600), found ${(info.mode & 0o777).toString(8)}; run chmod 600 ${path}`,
      );
    }
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new SecurityMaterialError(
      `${path} is not JSON (${(err as Error).message}); restore it from a backup`,
      {
        cause: err,
      },
    );
  }
  const parsed = AuthSeeds.safeParse(json);
  if (!parsed.success) {
    throw new SecurityMaterialError(
      `${path} is not slotflow's NATS auth file: ${z.prettifyError(parsed.error)}; move it away to make a new operator (every issued credential then stops working)`,
    );
  }
  return parsed.data;
}

function newSeeds(): AuthSeeds {
  const text = (kp: KeyPair) => new TextDecoder().decode(kp.getSeed());
  return {
    version: 1,
    operator: text(createOperator()),
    system: text(createAccount()),
    account: text(createAccount()),
    accountSigning: text(createAccount()),
  };
}

const kp = (s: string) => fromSeed(new TextEncoder().encode(s));

const Revocations = z.record(z.string().regex(/^U[A-Z2-7]{55}$/), z.number().int().nonnegative());

/** The revoked user keys (empty when none were revoked). */
export async function readRevocations(dir: string): Promise<Record<string, number>> {
  const path = natsAuthPaths(dir).revocations;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  const parsed = Revocations.safeParse(JSON.parse(text));
  if (!parsed.success) {
    throw new SecurityMaterialError(
      `${path} is not a list of revoked NATS user keys: ${z.prettifyError(parsed.error)}; fix or delete it (deleting it lets revoked nodes back in)`,
    );
  }
  return parsed.data;
}

/** The seeds in `path`, made on first use (a concurrent first use reads the winner's). */
async function loadOrCreateSeeds(path: string): Promise<AuthSeeds> {
  const existing = await readSeeds(path);
  if (existing) return existing;
  try {
    await writeFile(path, JSON.stringify(newSeeds(), null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const seeds = await readSeeds(path);
  if (!seeds) throw new SecurityMaterialError(`expected ${path} after writing it, but it is gone`);
  return seeds;
}

/**
 * The operator JWT, made once and kept: nats-server refuses a configuration reload that changes
 * it. One made for another operator key (auth.json replaced) is made again.
 */
async function loadOrCreateOperatorJwt(
  path: string,
  operator: KeyPair,
  systemAccount: string,
): Promise<string> {
  const existing = await readFile(path, 'utf8').then(
    (text) => text.trim(),
    () => undefined,
  );
  if (existing) {
    try {
      if (decode(existing).sub === operator.getPublicKey()) return existing;
    } catch {
      // not a JWT: made again below
    }
  }
  const jwt = await encodeOperator('slotflow', operator, { system_account: systemAccount });
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, jwt + '\n');
  await rename(temp, path);
  return jwt;
}

/**
 * Loads the operator and accounts from `dir`, creating them on first use, and writes the
 * operator JWT (once). The account JWTs are re-signed each time; the keys (and so every
 * credential issued before) stay the same.
 */
export async function ensureNatsAuth(dir: string): Promise<NatsAuth> {
  const paths = natsAuthPaths(dir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const seeds = await loadOrCreateSeeds(paths.seeds);
  const operator = kp(seeds.operator);
  const system = kp(seeds.system);
  const account = kp(seeds.account);
  const signing = kp(seeds.accountSigning);
  const operatorJwt = await loadOrCreateOperatorJwt(paths.operatorJwt, operator, system.getPublicKey());
  const systemJwt = await encodeAccount('SYS', system, { limits: UNLIMITED }, { signer: operator });
  const accountJwt = await encodeAccount(
    SLOTFLOW_ACCOUNT,
    account,
    {
      signing_keys: [signing.getPublicKey()],
      limits: { ...UNLIMITED, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 },
      revocations: await readRevocations(dir),
    },
    { signer: operator },
  );
  return {
    dir,
    operatorJwt,
    systemAccount: { publicKey: system.getPublicKey(), jwt: systemJwt },
    account: { publicKey: account.getPublicKey(), jwt: accountJwt },
    signingKey: signing,
  };
}

/** TLS settings of the server's client port. */
export interface ServerTls {
  readonly cert: string;
  readonly key: string;
}

/**
 * The nats-server configuration: operator mode with a memory resolver preloading the system and
 * SLOTFLOW accounts, and TLS required on the client port. Paths may be rewritten for a container
 * (`operatorJwt`).
 */
export function serverAuthConfig(auth: NatsAuth, tls: ServerTls, operatorJwt: string): string {
  const q = JSON.stringify;
  return [
    '# Written by slotflow: operator mode, TLS on every client connection.',
    `operator: ${q(operatorJwt)}`,
    `system_account: ${q(auth.systemAccount.publicKey)}`,
    'resolver: MEMORY',
    'resolver_preload: {',
    `  ${auth.systemAccount.publicKey}: ${q(auth.systemAccount.jwt)}`,
    `  ${auth.account.publicKey}: ${q(auth.account.jwt)}`,
    '}',
    'tls {',
    `  cert_file: ${q(tls.cert)}`,
    `  key_file: ${q(tls.key)}`,
    '  timeout: 5',
    '}',
    '',
  ].join('\n');
}

/** Writes the server configuration into the auth dir and returns its path. */
export async function writeServerConfig(auth: NatsAuth, tls: ServerTls): Promise<string> {
  const paths = natsAuthPaths(auth.dir);
  // Whole or not at all: a reload may read it at any moment.
  const temp = `${paths.serverConfig}.${process.pid}.tmp`;
  await writeFile(temp, serverAuthConfig(auth, tls, paths.operatorJwt));
  await rename(temp, paths.serverConfig);
  return paths.serverConfig;
}

function credsName(role: NatsRole): string {
  return role.type === 'node' ? `node-${role.nodeId}` : role.type;
}

/** The path of a role's creds file (whether it exists or not). */
export function credsPath(dir: string, role: NatsRole): string {
  return join(natsAuthPaths(dir).credsDir, `${credsName(role)}.creds`);
}

/**
 * Makes a new user for `role`, signed by the SLOTFLOW account's signing key with the role's
 * permissions, and writes its creds file (JWT + seed, mode 0600). Returns the file's path.
 */
export async function issueCredentials(dir: string, role: NatsRole): Promise<string> {
  const auth = await ensureNatsAuth(dir);
  const user = createUser();
  const jwt = await encodeUser(
    credsName(role),
    user,
    auth.account.publicKey,
    { ...permissionsOf(role), tags: [`role:${role.type}`] },
    { signer: auth.signingKey },
  );
  const path = credsPath(dir, role);
  await mkdir(natsAuthPaths(dir).credsDir, { recursive: true, mode: 0o700 });
  if (role.type === 'node') {
    const issued = join(natsAuthPaths(dir).issuedDir, role.nodeId);
    await mkdir(issued, { recursive: true, mode: 0o700 });
    await writeFile(join(issued, user.getPublicKey()), '');
  }
  await writeFile(path, fmtCreds(jwt, user), { mode: 0o600 });
  await chmod(path, 0o600);
  return path;
}

/**
 * A node's NATS credentials: it may publish only its own events and read only its own commands
 * (plus the plans and images). Nothing on the server changes; the file goes to the node.
 */
export function issueNodeCredentials(dir: string, nodeId: string): Promise<string> {
  return issueCredentials(dir, { type: 'node', nodeId });
}

/** What a secured nats-server and its clients need, as the stack record keeps it. */
export interface ServerSecurity {
  readonly authDir: string;
  readonly configFile: string;
  readonly ca: string;
  readonly cliCreds: string;
  readonly workerCreds: string;
}

/** True when the creds file's user JWT carries exactly the permissions the role has today. */
async function grantsCurrentPermissions(path: string, role: NatsRole): Promise<boolean> {
  const jwt = /-----BEGIN NATS USER JWT-----\s*(\S+)\s*------END NATS USER JWT------/.exec(
    await readFile(path, 'utf8'),
  )?.[1];
  if (!jwt) return false;
  const claims = decode<{ pub?: unknown; sub?: unknown }>(jwt).nats;
  const wanted = permissionsOf(role);
  const same = (a: unknown, b: unknown) => JSON.stringify(a ?? {}) === JSON.stringify(b);
  return same(claims.pub, wanted.pub) && same(claims.sub, wanted.sub);
}

/**
 * The role's existing creds, or new ones when there are none or they grant other permissions
 * than the role has now (e.g. a worker credential made before relay subjects were denied to it).
 */
async function existingOrIssued(dir: string, role: NatsRole): Promise<string> {
  const path = credsPath(dir, role);
  const current = await stat(path).then(
    () => grantsCurrentPermissions(path, role).catch(() => false),
    () => false,
  );
  return current ? path : issueCredentials(dir, role);
}

/**
 * Everything `stack up` needs for a secured nats-server in `dir`: operator and accounts, the CA
 * and server certificate (tls/), the server configuration, and creds for the CLI and the worker
 * (made once; later calls keep them).
 */
export async function prepareServerSecurity(dir: string, runner?: Runner): Promise<ServerSecurity> {
  const auth = await ensureNatsAuth(dir);
  const tls = await ensureTlsFiles(natsAuthPaths(dir).tlsDir, runner ? { runner } : {});
  const configFile = await writeServerConfig(auth, tls);
  return {
    authDir: dir,
    configFile,
    ca: tls.ca,
    cliCreds: await existingOrIssued(dir, { type: 'cli' }),
    workerCreds: await existingOrIssued(dir, { type: 'worker' }),
  };
}

/** What `exportCredentials` wrote for one holder: its creds file and the CA next to it. */
export interface ExportedCredentials {
  readonly holder: string;
  readonly creds: string;
  readonly ca: string;
}

/**
 * Copies each holder's credentials into `<dir>/<holder>/nats.creds` with the CA as
 * `<dir>/<holder>/ca.pem`, so each machine or container gets a directory with only its own
 * (compose mounts one volume per holder there). Holders: `worker`, `cli` and node ids (a node
 * without creds yet gets them issued).
 */
export async function exportCredentials(
  security: ServerSecurity,
  dir: string,
  nodeIds: readonly string[],
): Promise<ExportedCredentials[]> {
  const clash = nodeIds.find((id) => id === 'worker' || id === 'cli');
  if (clash) {
    throw new SecurityMaterialError(
      `expected node ids other than 'worker' and 'cli' when exporting credentials, got '${clash}'; rename the node`,
    );
  }
  const ca = await readFile(security.ca);
  const sources: [string, string][] = [
    ['worker', security.workerCreds],
    ['cli', security.cliCreds],
  ];
  for (const id of nodeIds)
    sources.push([id, await existingOrIssued(security.authDir, { type: 'node', nodeId: id })]);
  const out: ExportedCredentials[] = [];
  for (const [holder, source] of sources) {
    const target = join(dir, holder);
    await mkdir(target, { recursive: true });
    const creds = join(target, 'nats.creds');
    const caFile = join(target, 'ca.pem');
    await writeFile(creds, await readFile(source), { mode: 0o600 });
    await chmod(creds, 0o600);
    await writeFile(caFile, ca);
    out.push({ holder, creds, ca: caFile });
  }
  return out;
}
