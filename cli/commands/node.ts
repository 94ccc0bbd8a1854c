import { access, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname, resolve } from 'node:path';
import Table from 'cli-table3';
import { openEventLog } from '../../eventlog/index.ts';
import { Base64, isValidId } from '../../schema/index.ts';
import { KeyError, loadSigningKey, nodePublicKey } from '../../signing/index.ts';
import {
  EnrolmentError,
  acceptNode,
  controlPlaneTrustedKeys,
  enrolNode,
  openEnrolmentBucket,
  preauthorizeNode,
  readTrustState,
  rejectNode,
  revokeNode,
  type EnrolmentAuthority,
  type NodeTrust,
} from '../../trust/index.ts';
import { parseFlags, type Command } from '../command.ts';
import {
  defaultNatsAuthDir,
  issueNodeCredentials,
  natsAuthPaths,
  reloadStackNats,
  revokeNodeCredentials,
} from '../../stack/index.ts';
import { cliConfig, printJson, withNats } from '../context.ts';
import { OperationFailed, UsageError } from '../usage-error.ts';

function nodeIdOf(flag: string, value: string | undefined, usage: string): string {
  if (value === undefined) throw new UsageError(`${flag}: a node id is required\nusage: ${usage}`);
  if (!isValidId(value)) {
    throw new UsageError(`${flag}: expected a node id of letters, digits, '-' or '_', got '${value}'`);
  }
  return value;
}

export function operator(): string {
  try {
    return `operator:${userInfo().username}`;
  } catch {
    return 'operator';
  }
}

/**
 * The NATS operator material of the stack this CLI talks to, when it runs secured: the directory
 * holding the CLI's own creds (`<authDir>/creds/cli.creds`), or the default stack's.
 */
async function natsAuthDir(credsFile: string | undefined): Promise<string | undefined> {
  const candidates = [...(credsFile ? [dirname(dirname(credsFile))] : []), defaultNatsAuthDir()];
  for (const dir of candidates) {
    if (
      await access(natsAuthPaths(dir).seeds).then(
        () => true,
        () => false,
      )
    )
      return dir;
  }
  return undefined;
}

/** What enrolment did to the node's NATS access, for the output. */
interface NatsAccess {
  /** The node's new NATS credentials file (per-node permissions), when the stack runs secured. */
  natsCreds?: string;
  /** Its NATS user keys revoked (revoke), the server reloaded. */
  natsRevoked?: string[];
}

/** Runs `fn` as the enrolment authority (the control plane's key, the log, the certificate bucket), with the stack's NATS auth dir when secured. */
async function asAuthority<T>(
  fn: (authority: EnrolmentAuthority, natsAuth: string | undefined) => Promise<T>,
  access: NatsAccess = {},
): Promise<T> {
  const config = cliConfig();
  const authDir = await natsAuthDir(config.nats.credsFile);
  let key;
  let trustedKeys;
  try {
    key = await loadSigningKey(config.home);
    trustedKeys = await controlPlaneTrustedKeys(config.home, { retired: true });
  } catch (err) {
    if (err instanceof KeyError) throw new OperationFailed(err.message, { cause: err });
    throw err;
  }
  return withNats(config, async (nc) => {
    const authority: EnrolmentAuthority = {
      log: await openEventLog(nc),
      certificates: await openEnrolmentBucket(nc),
      key,
      trustedKeys,
      by: operator(),
      // On a secured stack an enrolled node also gets NATS credentials that let it speak only for itself.
      ...(authDir
        ? {
            issueNodeCredentials: async ({ nodeId }) => {
              access.natsCreds = await issueNodeCredentials(authDir, nodeId);
            },
          }
        : {}),
    };
    try {
      return await fn(authority, authDir);
    } catch (err) {
      if (err instanceof EnrolmentError) throw new OperationFailed(err.message, { cause: err });
      throw err;
    }
  });
}

const preauthorizeUsage = 'slotflow node preauthorize --node-id ID --data-dir DIR [--json]';

/** `slotflow node preauthorize`: enrol a node before it first starts (its key made in its data dir). */
export const nodePreauthorize: Command = {
  path: ['node', 'preauthorize'],
  usage: preauthorizeUsage,
  async run(argv) {
    const { values } = parseFlags(
      argv,
      { 'node-id': { type: 'string' }, 'data-dir': { type: 'string' }, json: { type: 'boolean' } },
      preauthorizeUsage,
    );
    const nodeId = nodeIdOf('--node-id', values['node-id'], preauthorizeUsage);
    if (!values['data-dir'])
      throw new UsageError(`--data-dir: the agent's data directory is required\nusage: ${preauthorizeUsage}`);
    const dataDir = resolve(values['data-dir']);
    const access: NatsAccess = {};
    const result = await asAuthority((a) => preauthorizeNode(a, { nodeId, dataDir }), access);
    if (values.json) printJson({ nodeId, status: 'enrolled', how: 'preauthorized', ...result, ...access });
    else
      process.stdout.write(
        `enrolled ${nodeId} (key ${result.certificate.keyId}, peer ${result.certificate.peerId})\n  certificate: ${result.file}\n` +
          (access.natsCreds ? `  NATS credentials: ${access.natsCreds}\n` : ''),
      );
    return 0;
  },
};

const enrollUsage = 'slotflow node enroll --node-id ID --public-key BASE64 [--out FILE] [--json]';

/** `slotflow node enroll`: enrol a key made on the node; prints (or writes) its certificate. */
export const nodeEnroll: Command = {
  path: ['node', 'enroll'],
  usage: enrollUsage,
  async run(argv) {
    const { values } = parseFlags(
      argv,
      {
        'node-id': { type: 'string' },
        'public-key': { type: 'string' },
        out: { type: 'string' },
        json: { type: 'boolean' },
      },
      enrollUsage,
    );
    const nodeId = nodeIdOf('--node-id', values['node-id'], enrollUsage);
    const publicKey = values['public-key'];
    try {
      if (publicKey === undefined || !Base64.safeParse(publicKey).success) throw new KeyError('not base64');
      nodePublicKey(publicKey);
    } catch {
      throw new UsageError(
        `--public-key: expected the node's raw 32-byte ed25519 public key in base64, got '${publicKey ?? ''}'`,
      );
    }
    const { certificate, seq } = await asAuthority((a) =>
      enrolNode(a, { nodeId, publicKey, how: 'preauthorized' }),
    );
    const text = JSON.stringify(certificate, null, 2);
    if (values.out) await writeFile(values.out, `${text}\n`, { mode: 0o644 });
    if (values.json)
      printJson({
        nodeId,
        status: 'enrolled',
        seq,
        certificate,
        ...(values.out ? { file: values.out } : {}),
      });
    else if (values.out)
      process.stdout.write(
        `enrolled ${nodeId}; certificate written to ${values.out} (copy it to <dataDir>/enrolment.json)\n`,
      );
    else process.stdout.write(`${text}\n`);
    return 0;
  },
};

const pendingUsage = 'slotflow node pending [--all] [--json]';

function row(n: NodeTrust) {
  return {
    nodeId: n.nodeId,
    status: n.status,
    keyId: n.keyId,
    peerId: n.peerId,
    labels: n.labels ?? {},
    ...(n.requestedAt ? { requestedAt: n.requestedAt } : {}),
    ...(n.how ? { how: n.how } : {}),
    since: n.since,
  };
}

/** `slotflow node pending`: nodes that asked to be enrolled and wait for an operator (--all: every node). */
export const nodePending: Command = {
  path: ['node', 'pending'],
  usage: pendingUsage,
  async run(argv) {
    const { values } = parseFlags(
      argv,
      { all: { type: 'boolean' }, json: { type: 'boolean' } },
      pendingUsage,
    );
    const config = cliConfig();
    const trustedKeys = await controlPlaneTrustedKeys(config.home, { retired: true }).catch(
      (err: unknown) => {
        throw new OperationFailed((err as Error).message, { cause: err });
      },
    );
    const state = await withNats(config, async (nc) => readTrustState(await openEventLog(nc), trustedKeys));
    const nodes = [...state.nodes.values()]
      .filter((n) => values.all || n.status === 'pending')
      .sort((a, b) => a.nodeId.localeCompare(b.nodeId))
      .map(row);
    if (values.json) {
      printJson({ nodes });
      return 0;
    }
    if (nodes.length === 0) {
      process.stdout.write(
        values.all
          ? 'no node has asked to be enrolled or been enrolled\n'
          : 'no pending enrolment requests\n',
      );
      return 0;
    }
    const table = new Table({ head: ['node', 'status', 'key', 'peer id', 'labels', 'since'] });
    for (const n of nodes) {
      const labels = Object.entries(n.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(',');
      table.push([n.nodeId, n.status, n.keyId, n.peerId, labels, n.since]);
    }
    process.stdout.write(`${table.toString()}\n`);
    if (!values.all)
      process.stdout.write("accept with 'slotflow node accept ID', refuse with 'slotflow node reject ID'\n");
    return 0;
  },
};

/**
 * A revoked node also loses NATS: every user key it was issued goes on the account's revocation
 * list and the stack's nats-server reloads, dropping its open connections.
 */
async function cutNatsAccess(authDir: string | undefined, nodeId: string, access: NatsAccess): Promise<void> {
  if (!authDir) return;
  const revoked = await revokeNodeCredentials(authDir, nodeId);
  access.natsRevoked = revoked.userKeys;
  await reloadStackNats(dirname(authDir));
}

/** One of accept, reject, revoke: a decision about one node id. */
function decision(
  verb: 'accept' | 'reject' | 'revoke',
  act: (a: EnrolmentAuthority, nodeId: string, reason?: string) => Promise<{ seq: number }>,
  done: string,
): Command {
  const usage = `slotflow node ${verb} ID${verb === 'accept' ? '' : ' [--reason TEXT]'} [--json]`;
  return {
    path: ['node', verb],
    usage,
    async run(argv) {
      const { values, positionals } = parseFlags(
        argv,
        { json: { type: 'boolean' }, ...(verb === 'accept' ? {} : { reason: { type: 'string' } }) },
        usage,
        { positionals: 1 },
      );
      const nodeId = nodeIdOf('ID', positionals[0], usage);
      const reason = (values as { reason?: string }).reason;
      const access: NatsAccess = {};
      const result = await asAuthority(async (a, natsAuth) => {
        const decided = await act(a, nodeId, reason);
        if (verb === 'revoke') await cutNatsAccess(natsAuth, nodeId, access);
        return decided;
      }, access);
      if (values.json) printJson({ nodeId, status: done, seq: result.seq, ...access });
      else
        process.stdout.write(
          `${nodeId}: ${done} (event log sequence ${result.seq})\n` +
            (access.natsCreds ? `  NATS credentials: ${access.natsCreds}\n` : '') +
            (access.natsRevoked ? `  NATS credentials revoked: ${access.natsRevoked.length}\n` : ''),
        );
      return 0;
    },
  };
}

export const nodeAccept = decision('accept', (a, id) => acceptNode(a, id), 'enrolled');
export const nodeReject = decision('reject', rejectNode, 'rejected');
export const nodeRevoke = decision('revoke', revokeNode, 'revoked');
