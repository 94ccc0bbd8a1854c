import { rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { AgentConfig, AgentState, ArtifactManifest, Command } from '../schema/index.ts';
import type { Runner } from '../runtime/runner.ts';
import { fetchImage, verifyImageFile, type ArtifactSource } from './artifact/index.ts';
import {
  ArtifactInvalidError,
  ArtifactUnavailableError,
  RebootError,
  SlotDriverError,
  SlotInUseError,
  describeError,
} from './errors.ts';
import type { StepDetail } from './events.ts';
import { runHealthChecks } from './health/health-checks.ts';
import type { Operation } from './journal-data.ts';
import type { RebootTurn } from './p2p-link.ts';
import { stagingFile, type AgentPaths } from './paths.ts';
import type { RebootDriver } from './reboot/reboot-driver.ts';
import { bootedImage, type InstallSource, type SlotDriver, type SlotStatus } from './slot-drivers/driver.ts';
import { Outcome } from './transitions.ts';

/** What a step reports: the outcome for the transition table, changes to the operation, details for events. */
export interface StepResult {
  readonly outcome: Outcome;
  readonly patch?: Partial<Operation>;
  readonly detail?: StepDetail;
}

/** Everything a step may touch, injected (the file driver, runner and reboot are swappable). */
export interface StepDeps {
  readonly config: Pick<AgentConfig, 'initialVersion' | 'healthChecks' | 'fetchTimeout'>;
  readonly paths: AgentPaths;
  readonly driver: SlotDriver;
  readonly reboot: RebootDriver;
  readonly sources: readonly ArtifactSource[];
  readonly runner: Runner;
  /** This boot's id (see boot-id.ts). */
  readonly bootId: string;
  readonly log: Logger;
  /** Aborted when a Cancel arrives. */
  readonly signal: AbortSignal;
  /** Reads the journal now: a Cancel may arrive while a step runs. */
  readonly cancelRequested: () => boolean;
  readonly onBytesWritten: (bytes: number) => void;
  /** An image arrived and verified in staging (peers may fetch it from this node from now on). */
  readonly onImageFetched?: (manifest: ArtifactManifest, path: string) => Promise<void>;
  /** Waits for this node's reboot turn under the rollout's plan, when it must take one. */
  readonly rebootTurn?: (rolloutId: string, signal: AbortSignal) => Promise<RebootTurn>;
}

/** A state's entry action: does the side effect and reports how it went. Idempotent, so a crash can repeat it. */
export type Step = (op: Operation, d: StepDeps) => Promise<StepResult>;

type UpgradeCommand = Extract<Command, { type: 'Upgrade' }>;

function image(op: Operation): UpgradeCommand['image'] {
  if (op.command.type !== 'Upgrade') throw new Error(`operation ${op.command.commandId} is not an upgrade`);
  return op.command.image;
}

function manifestOf(op: Operation): ArtifactManifest | undefined {
  const img = image(op);
  return img.type === 'artifact' ? img.manifest : undefined;
}

const cancelled = (op: Operation): StepResult => ({
  outcome: Outcome.cancelled,
  detail: { reason: `cancelled by a Cancel command for rollout ${op.command.rolloutId} before the reboot` },
});

function trialLost(op: Operation, status: SlotStatus, initialVersion: string): StepResult {
  const running = bootedImage(status, initialVersion);
  return {
    outcome: Outcome.trialLost,
    detail: {
      reason: `the trial boot of slot ${op.toSlot} ended before it was committed (power loss or crash); the firmware booted slot ${status.booted} (${running.version})`,
    },
  };
}

/** Removes an operation's staging file (after it is written, committed or refused). */
export async function discardStaging(paths: AgentPaths, op: Operation): Promise<void> {
  if (op.toDigest) await rm(stagingFile(paths, op.toDigest), { force: true });
}

/** Reboots through the driver; returns the outcome when the reboot could not happen. */
async function rebootNow(op: Operation, d: StepDeps): Promise<StepResult> {
  try {
    return await d.reboot.reboot();
  } catch (err) {
    if (!(err instanceof RebootError)) throw err;
    d.log.error({ err: describeError(err) }, 'reboot failed');
    // Nothing booted: withdraw the trial so a later reboot cannot start it unattended.
    if (op.kind === 'upgrade') await d.driver.disarm();
    else await d.driver.activate(op.fromSlot);
    return {
      outcome: Outcome.rebootFailed,
      patch: { failure: err.message },
      detail: { reason: err.message },
    };
  }
}

/** The entry action of every state but idle. */
export const STEPS: Readonly<Record<Exclude<AgentState, 'idle'>, Step>> = {
  async fetching(op, d) {
    if (d.cancelRequested()) return cancelled(op);
    const img = image(op);
    if (img.type === 'oci')
      return { outcome: Outcome.fetched, patch: { source: `oci:${img.reference}@${img.digest}` } };
    try {
      const got = await fetchImage({
        manifest: img.manifest,
        path: stagingFile(d.paths, img.manifest.digest),
        sources: d.sources,
        deadline: Date.parse(op.startedAt) + d.config.fetchTimeout,
        signal: d.signal,
        log: d.log,
      });
      await d.onImageFetched?.(img.manifest, stagingFile(d.paths, img.manifest.digest));
      return {
        outcome: Outcome.fetched,
        patch: { source: got.source === 'staging' ? (op.source ?? 'staging (resumed)') : got.source },
      };
    } catch (err) {
      if (d.cancelRequested()) return cancelled(op);
      if (err instanceof ArtifactInvalidError) {
        await discardStaging(d.paths, op);
        return {
          outcome: Outcome.invalid,
          detail: {
            rejectReason: 'artifact-invalid',
            reason: `refused image ${img.manifest.digest} before touching the slot: ${err.message}`,
          },
        };
      }
      if (err instanceof ArtifactUnavailableError)
        return { outcome: Outcome.failed, detail: { reason: err.message } };
      throw err;
    }
  },

  async verifying(op, d) {
    const manifest = manifestOf(op);
    if (!manifest) return { outcome: Outcome.verified, detail: { bytes: 0 } };
    try {
      await verifyImageFile(stagingFile(d.paths, manifest.digest), manifest);
      return { outcome: Outcome.verified, detail: { bytes: manifest.size } };
    } catch (err) {
      if (!(err instanceof ArtifactInvalidError)) throw err;
      await discardStaging(d.paths, op);
      return {
        outcome: Outcome.invalid,
        detail: {
          rejectReason: 'artifact-invalid',
          reason: `refused image ${manifest.digest} before touching the slot: ${err.message}`,
        },
      };
    }
  },

  async writing(op, d) {
    if (d.cancelRequested()) return cancelled(op);
    const img = image(op);
    const source: InstallSource =
      img.type === 'artifact'
        ? { type: 'file', path: stagingFile(d.paths, img.manifest.digest), manifest: img.manifest }
        : { type: 'oci', reference: img.reference, digest: img.digest };
    try {
      await d.driver.install(op.toSlot, source, {
        version: op.toVersion,
        digest: op.toDigest!,
        signal: d.signal,
        onProgress: d.onBytesWritten,
      });
      return { outcome: Outcome.written };
    } catch (err) {
      if (d.cancelRequested()) return cancelled(op);
      if (err instanceof ArtifactInvalidError) {
        await discardStaging(d.paths, op);
        return {
          outcome: Outcome.invalid,
          detail: { rejectReason: 'artifact-invalid', reason: err.message },
        };
      }
      if (err instanceof SlotInUseError || err instanceof SlotDriverError) {
        return {
          outcome: Outcome.failed,
          detail: { reason: `writing slot ${op.toSlot} failed: ${err.message}` },
        };
      }
      throw err;
    }
  },

  async armed(op, d) {
    const status = await d.driver.status();
    if (op.kind === 'rollback') {
      if (status.booted === op.toSlot) return { outcome: Outcome.rolledBackEarly };
      await d.driver.activate(op.toSlot);
      return { outcome: Outcome.activated, patch: { rebootBootId: d.bootId } };
    }
    if (status.booted === op.toSlot && status.trial) return { outcome: Outcome.bootedEarly };
    if (d.cancelRequested()) {
      await d.driver.disarm();
      return cancelled(op);
    }
    // Under a rollout plan without the control plane, the node reboots only in its turn.
    const turn = (await d.rebootTurn?.(op.command.rolloutId, d.signal)) ?? { type: 'free' };
    if (d.cancelRequested()) return cancelled(op);
    if (turn.type === 'refused') {
      return { outcome: Outcome.failed, detail: { reason: `not rebooting: ${turn.reason}` } };
    }
    try {
      await d.driver.armTrialBoot(op.toSlot);
    } catch (err) {
      if (!(err instanceof SlotInUseError || err instanceof SlotDriverError)) throw err;
      return {
        outcome: Outcome.failed,
        detail: { reason: `arming slot ${op.toSlot} failed: ${err.message}` },
      };
    }
    await discardStaging(d.paths, op);
    return {
      outcome: Outcome.armed,
      patch: {
        rebootBootId: d.bootId,
        ...(turn.type === 'go' ? { turnDeadline: new Date(turn.deadline).toISOString() } : {}),
      },
    };
  },

  async rebooting(op, d) {
    if (op.rebootBootId === d.bootId) return rebootNow(op, d);
    const status = await d.driver.status();
    const arrived = status.booted === op.toSlot;
    if (op.kind === 'rollback') {
      if (arrived) return { outcome: Outcome.rolledBack };
      return {
        outcome: Outcome.rollbackMissed,
        detail: { reason: `the rollback booted slot ${status.booted}, expected slot ${op.toSlot}` },
      };
    }
    if (arrived && status.trial) return { outcome: Outcome.bootedTrial };
    const running = bootedImage(status, d.config.initialVersion);
    return {
      outcome: Outcome.bootedPrevious,
      detail: {
        check: 'booted-expected-slot',
        reason: `the firmware booted slot ${status.booted} (${running.version}) instead of the trial slot ${op.toSlot}`,
      },
    };
  },

  async 'trial-booted'(op, d) {
    const status = await d.driver.status();
    if (status.booted !== op.toSlot) return trialLost(op, status, d.config.initialVersion);
    return { outcome: Outcome.checking };
  },

  async 'health-checking'(op, d) {
    const status = await d.driver.status();
    if (status.booted !== op.toSlot) return trialLost(op, status, d.config.initialVersion);
    const wanted = new Set(op.checks);
    const result = await runHealthChecks({
      runner: d.runner,
      checks: d.config.healthChecks.filter((c) => wanted.has(c.name)),
      status,
      expected: { slot: op.toSlot, version: op.toVersion },
      initialVersion: d.config.initialVersion,
    });
    if (result.ok) return { outcome: Outcome.healthy, detail: { checks: result.checks } };
    return { outcome: Outcome.unhealthy, detail: { check: result.check, reason: result.reason } };
  },

  async committed(op, d) {
    const status = await d.driver.status();
    if (status.booted !== op.toSlot) return trialLost(op, status, d.config.initialVersion);
    await d.driver.markGood(op.toSlot);
    return { outcome: Outcome.done };
  },

  async 'falling-back'(op, d) {
    const status = await d.driver.status();
    if (status.booted === op.fromSlot && !status.trial) {
      // Make sure the refused image never boots on its own later.
      if (op.kind === 'upgrade') await d.driver.markBad(op.toSlot);
      return { outcome: op.fallbackRebooting ? Outcome.backOnPrevious : Outcome.fellBack };
    }
    if (op.fallbackRebooting && op.rebootBootId === d.bootId) {
      const result = await rebootNow(op, d);
      throw new RebootError(`the fallback reboot did not happen: ${result.detail?.reason ?? 'unknown'}`);
    }
    if (op.fallbackAttempts >= 3) {
      return {
        outcome: Outcome.fellBack,
        detail: {
          reason: `${op.failure ?? 'fallback'}; still on slot ${status.booted} after 3 fallback reboots — needs an operator`,
        },
      };
    }
    if (op.kind === 'upgrade') await d.driver.markBad(op.toSlot);
    await d.driver.activate(op.fromSlot);
    return {
      outcome: Outcome.rebootNeeded,
      patch: { rebootBootId: d.bootId, fallbackRebooting: true, fallbackAttempts: op.fallbackAttempts + 1 },
    };
  },
};
