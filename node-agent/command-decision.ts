import {
  compareVersions,
  isKeyCommand,
  otherSlot,
  type AnyCommand,
  type Command,
  type KeyCommand,
  type NodeEvent,
  type RejectReason,
} from '../schema/index.ts';
import type { Verification } from '../signing/index.ts';
import type { JournalData, Operation } from './journal-data.ts';
import { decideKeyCommand, type KeyView } from './key-decision.ts';
import { bootedImage, type InstallSource, type SlotStatus } from './slot-drivers/driver.ts';
import { CANCELLABLE } from './transitions.ts';

/** What the agent does with one incoming command. */
export type Decision =
  | {
      readonly kind: 'reject';
      readonly reason: RejectReason;
      readonly message: string;
      /** The command's ids, only when its signature checked out (a forger must not steer workflows). */
      readonly command?: AnyCommand | undefined;
    }
  /** A verified TrustKey: trust one more control-plane key. */
  | { readonly kind: 'trust'; readonly command: KeyCommand & { type: 'TrustKey' }; readonly signedBy: string }
  /** A verified RevokeKey: refuse a control-plane key from now on. */
  | {
      readonly kind: 'revoke';
      readonly command: KeyCommand & { type: 'RevokeKey' };
      readonly signedBy: string;
    }
  /** Redelivery of the command being executed: just acknowledge it. */
  | { readonly kind: 'ack' }
  /** Redelivery of a finished command: send its final event again (same id, de-duplicated). */
  | { readonly kind: 'reemit'; readonly event: NodeEvent }
  | { readonly kind: 'start'; readonly op: Operation }
  /** Nothing to do: the node already runs what the command asks for. */
  | { readonly kind: 'already'; readonly op: Operation }
  | { readonly kind: 'cancel'; readonly command: Command; readonly cancels: boolean };

/** What the decision looks at. */
export interface DecisionContext {
  readonly journal: Readonly<JournalData>;
  /** Needed only for a verified Upgrade or Rollback. */
  readonly status: () => Promise<SlotStatus>;
  /** Image kinds the slot driver installs. */
  readonly accepts: readonly InstallSource['type'][];
  /** Names of the configured health checks. */
  readonly healthChecks: readonly string[];
  readonly initialVersion: string;
  readonly now: Date;
  /** The node's minimum version (the newest it committed); older images need a signed allowance. */
  readonly floor?: string | undefined;
  /** The control-plane keys the node trusts and refuses, for key commands. */
  readonly keys: KeyView;
}

/** The version an upgrade or rollback may not go below without an allowance. */
function minimumOf(running: string, floor: string | undefined): string {
  return floor !== undefined && compareVersions(floor, running) > 0 ? floor : running;
}

// Refusals decided before the signature was checked: nothing in them can be trusted.
const UNVERIFIED: ReadonlySet<RejectReason> = new Set(['malformed', 'unknown-key', 'bad-signature']);

function busy(journal: Readonly<JournalData>): string | undefined {
  if (!journal.op && journal.state === 'idle') return undefined;
  return `busy with ${journal.op?.kind ?? 'an operation'} ${journal.op?.command.commandId ?? ''} (state ${journal.state}); send it again when the node is idle`;
}

function earlier(journal: Readonly<JournalData>, commandId: string): Decision | undefined {
  const handled = journal.handled.find((h) => h.commandId === commandId);
  if (handled) return { kind: 'reemit', event: handled.final };
  if (journal.op?.command.commandId === commandId) return { kind: 'ack' };
  return undefined;
}

/**
 * Decides what to do with a verified (or refused) command: start an operation, refuse it with a
 * reason, or recognise a redelivery. Pure apart from reading the slot status.
 */
export async function decide(v: Verification, ctx: DecisionContext): Promise<Decision> {
  const { journal } = ctx;
  if (!v.ok) {
    const trusted = !UNVERIFIED.has(v.reason) && v.command?.commandId !== undefined;
    if (trusted) {
      const again = earlier(journal, v.command!.commandId!);
      if (again) return again;
    }
    return {
      kind: 'reject',
      reason: v.reason,
      message: v.message,
      command: trusted ? (v.command as AnyCommand) : undefined,
    };
  }
  if (isKeyCommand(v.command)) {
    const again = earlier(journal, v.command.commandId);
    if (again) return again;
    const d = decideKeyCommand(v.command, v.keyId, ctx.keys);
    return d.kind === 'reject' ? { ...d, command: v.command } : d;
  }
  const command: Command = v.command;
  const reject = (reason: RejectReason, message: string): Decision => ({
    kind: 'reject',
    reason,
    message,
    command,
  });
  const again = earlier(journal, command.commandId);
  if (again) return again;
  if (command.type === 'Cancel') {
    const op = journal.op;
    const cancels =
      op?.kind === 'upgrade' && op.command.rolloutId === command.rolloutId && CANCELLABLE.has(journal.state);
    return { kind: 'cancel', command, cancels };
  }
  const refusal = busy(journal);
  if (refusal) return reject('busy', refusal);
  const status = await ctx.status();
  if (status.trial)
    return reject(
      'busy',
      `the node runs an uncommitted trial of slot ${status.booted}; wait until it is committed or falls back`,
    );
  const running = bootedImage(status, ctx.initialVersion);
  const minimum = minimumOf(running.version, ctx.floor);
  const base = {
    command,
    fromSlot: status.booted,
    fromVersion: running.version,
    ...(running.digest ? { fromDigest: running.digest } : {}),
    fallbackRebooting: false,
    fallbackAttempts: 0,
    cancelRequested: false,
    startedAt: ctx.now.toISOString(),
  };

  if (command.type === 'Rollback') {
    const to = otherSlot(status.booted);
    const target = status.slots[to];
    if (command.toVersion !== undefined && running.version === command.toVersion) {
      return {
        kind: 'already',
        op: { ...base, kind: 'rollback', toSlot: status.booted, toVersion: running.version, checks: [] },
      };
    }
    if (!target) return reject('unsupported', `nothing to roll back to: slot ${to} holds no image`);
    if (target.bad)
      return reject('unsupported', `slot ${to} failed its trial boot; it cannot be rolled back to`);
    if (command.toVersion !== undefined && target.version !== command.toVersion) {
      return reject(
        'unsupported',
        `slot ${to} holds version ${target.version}, the command asks for ${command.toVersion}`,
      );
    }
    if (
      command.allowDowngrade !== true &&
      ctx.floor !== undefined &&
      compareVersions(target.version, ctx.floor) < 0
    ) {
      return reject(
        'downgrade',
        `slot ${to} holds version ${target.version}, below this node's minimum version ${ctx.floor}; the Rollback does not carry a signed downgrade allowance (a rollout's rollback does)`,
      );
    }
    return {
      kind: 'start',
      op: {
        ...base,
        kind: 'rollback',
        toSlot: to,
        toVersion: target.version,
        ...(target.digest ? { toDigest: target.digest } : {}),
        checks: [],
      },
    };
  }

  const img = command.image;
  const kind = img.type === 'artifact' ? 'file' : 'oci';
  if (!ctx.accepts.includes(kind)) {
    return reject(
      'unsupported',
      `this node's slot driver installs ${ctx.accepts.join('/')} images, the command sends an ${img.type} image`,
    );
  }
  const digest = img.type === 'artifact' ? img.manifest.digest : img.digest;
  const version = img.type === 'artifact' ? img.manifest.version : img.version;
  if (command.manifestDigest !== digest) {
    return reject(
      'artifact-invalid',
      `manifestDigest ${command.manifestDigest} does not match the image digest ${digest}`,
    );
  }
  const unknown = command.healthChecks.filter((name) => !ctx.healthChecks.includes(name));
  if (unknown.length > 0) {
    return reject(
      'unsupported',
      `unknown health check(s) ${unknown.join(', ')}; this node has: ${ctx.healthChecks.join(', ') || 'none'}`,
    );
  }
  const checks = command.healthChecks.length > 0 ? command.healthChecks : [...ctx.healthChecks];
  if (running.digest === digest) {
    return {
      kind: 'already',
      op: { ...base, kind: 'upgrade', toSlot: status.booted, toVersion: version, toDigest: digest, checks },
    };
  }
  if (!command.allowDowngrade && compareVersions(version, minimum) < 0) {
    const what =
      minimum === running.version
        ? `the running ${running.version}`
        : `this node's minimum version ${minimum} (the newest it committed; it runs ${running.version})`;
    return reject(
      'downgrade',
      `image version ${version} is older than ${what}; the command does not allow a downgrade (start the rollout with --allow-downgrade)`,
    );
  }
  return {
    kind: 'start',
    op: {
      ...base,
      kind: 'upgrade',
      toSlot: otherSlot(status.booted),
      toVersion: version,
      toDigest: digest,
      checks,
    },
  };
}
