import {
  ApplicationFailure,
  ParentClosePolicy,
  allHandlersFinished,
  condition,
  continueAsNew,
  executeChild,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  startChild,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import {
  RolloutSpec,
  describeIssues,
  thresholdBreached,
  type DomainEventInput,
  type ImageSource,
  type RolloutSpecInput,
} from '../schema/index.ts';
import {
  ImageDigestKey,
  NodeIdKey,
  RolloutIdKey,
  WaveKey,
  abortUpdate,
  approveUpdate,
  nodeWorkflowId,
  pauseUpdate,
  resumeUpdate,
  rollbackUpdate,
  statusQuery,
  type OperatorRequest,
  type RolloutStatusView,
} from './definitions.ts';
import { describePlan, fallbackWaves, planRequest } from './fallback-plan.ts';
import { imageBuildWorkflow } from './image-build.ts';
import { nodeUpgradeWorkflow, type NodeUpgradeResult } from './node-upgrade.ts';
import { msUntilWindow, planWaves } from './planning.ts';
import { openNodeBook, plannedNodes, type NodeBook } from './node-book.ts';
import {
  currentState,
  groupSkipped,
  initialState,
  isFinished,
  type Control,
  type LegacyRolloutState,
  type RolloutState,
} from './rollout-state.ts';
import { HISTORY_EVENT_BUDGET, MAX_CHILDREN_IN_FLIGHT, QUICK_ACTIVITY } from './timeouts.ts';

const {
  recordEvents,
  resolveTargets,
  pinOciImage,
  lookupPublishedImage,
  issuePlan,
  imageKindsWanted,
  resolveOciImage,
} = proxyActivities<Activities>(QUICK_ACTIVITY);

/** Marks histories written since rollouts sign a plan for the peer-to-peer fallback. */
const FALLBACK_PLAN_PATCH = 'fallback-plan';
/** Marks histories written since an OCI reference is pinned at start and converted for slot-image nodes. */
const OCI_CONVERT_PATCH = 'oci-convert';
/** Marks histories written since a stopping rollout withdraws its plan before its nodes in flight end. */
const WITHDRAW_FIRST_PATCH = 'withdraw-plan-first';

export interface RolloutInput {
  spec: RolloutSpecInput;
  /** State from the previous run when the rollout continued as new (an older worker's shape is accepted). */
  carried?: RolloutState | LegacyRolloutState;
  /** Continue as new past this many history events (tests lower it). */
  historyBudget?: number;
}

type EventBody = DomainEventInput extends infer E
  ? E extends { rolloutId: string }
    ? Omit<E, 'v' | 'id' | 'at' | 'rolloutId'>
    : never
  : never;

/**
 * A staged rollout: image → targets → waves of node upgrades under a concurrency limit, each
 * wave gated by the failure threshold, a soak time and optionally an operator's approval. A
 * breached threshold pauses the rollout or rolls back every node it touched, newest first.
 */
export async function rolloutWorkflow(input: RolloutInput): Promise<RolloutStatusView> {
  const parsed = RolloutSpec.safeParse(input.spec);
  if (!parsed.success) {
    throw ApplicationFailure.create({
      type: 'InvalidRolloutSpec',
      message: `invalid rollout spec: ${describeIssues(parsed.error.issues, input.spec).join('; ')}`,
      nonRetryable: true,
    });
  }
  const spec = parsed.data;
  const s = input.carried ? currentState(input.carried) : initialState(spec.id, spec.version);
  const head = s.head;
  let book: NodeBook | undefined = s.nodes ? openNodeBook(s.nodes) : undefined;
  const budget = input.historyBudget ?? HISTORY_EVENT_BUDGET;
  const cap = Math.min(spec.maxUnavailable, MAX_CHILDREN_IN_FLIGHT);

  async function emit(...bodies: EventBody[]): Promise<void> {
    const events = bodies.map((body) => ({
      ...body,
      v: 1,
      id: `${spec.id}:${++s.eventCounter}`,
      at: new Date().toISOString(),
      rolloutId: spec.id,
    })) as DomainEventInput[];
    await recordEvents.executeWithOptions(
      { ...QUICK_ACTIVITY, summary: bodies.map((b) => b.type).join(', ') },
      [events],
    );
  }

  const noNodes = { targets: 0, upgraded: 0, failed: 0, running: 0, pending: 0 };
  const counts = () => book?.counts() ?? noNodes;

  /** The status view, built from the compact state when asked for. */
  function statusView(): RolloutStatusView {
    const skipped = s.skipped.flatMap((g) => g.nodeIds.map((nodeId) => ({ nodeId, reason: g.reason })));
    return {
      ...head,
      waves: s.waveStatus.map((status, index) => ({
        index,
        nodeIds: book?.waveIds(index) ?? [],
        status,
        ...(book?.tally(index) ?? { succeeded: 0, failed: 0 }),
      })),
      nodes: book?.nodesView() ?? {},
      counts: { ...counts(), skipped: skipped.length },
      skipped,
    };
  }

  function request(control: Control, req: OperatorRequest, fallback: string): RolloutStatusView {
    s.control = control;
    s.request = { by: req.by ?? 'operator', reason: req.reason ?? fallback };
    return statusView();
  }

  // ---- operator controls: validators refuse requests that mean nothing in the current state
  setHandler(statusQuery, statusView);
  setHandler(
    pauseUpdate,
    (req) => {
      head.pauseReason = req.reason ?? 'paused by operator';
      return request('pause', req, 'paused by operator');
    },
    {
      validator: (_req: OperatorRequest) => {
        if (isFinished(head.status))
          throw new Error(`rollout ${spec.id} has ended (${head.status}); nothing to pause`);
        if (s.control !== 'run')
          throw new Error(
            `rollout ${spec.id} is already ${s.control === 'pause' ? 'paused' : s.control === 'abort' ? 'aborting' : 'rolling back'}`,
          );
      },
    },
  );
  setHandler(resumeUpdate, (req) => request('run', req, 'resumed by operator'), {
    validator: (_req: OperatorRequest) => {
      if (s.control !== 'pause')
        throw new Error(`rollout ${spec.id} is not paused (status ${head.status}); nothing to resume`);
    },
  });
  setHandler(abortUpdate, (req) => request('abort', req, 'aborted by operator'), {
    validator: (_req: OperatorRequest) => {
      if (isFinished(head.status)) throw new Error(`rollout ${spec.id} has already ended (${head.status})`);
      if (s.control === 'abort' || s.control === 'rollback')
        throw new Error(
          `rollout ${spec.id} is already ${s.control === 'abort' ? 'aborting' : 'rolling back'}`,
        );
    },
  });
  setHandler(rollbackUpdate, (req) => request('rollback', req, 'rollback requested by operator'), {
    validator: (_req: OperatorRequest) => {
      if (isFinished(head.status)) throw new Error(`rollout ${spec.id} has already ended (${head.status})`);
      if (s.control === 'rollback') throw new Error(`rollout ${spec.id} is already rolling back`);
    },
  });
  setHandler(
    approveUpdate,
    (req) => {
      s.approved = true;
      s.request = { by: req.by ?? 'operator', reason: req.reason ?? 'approved' };
      return statusView();
    },
    {
      validator: (_req: OperatorRequest) => {
        if (head.waitingFor !== 'approval') {
          throw new Error(
            `rollout ${spec.id} is not waiting for approval (status ${head.status}); nothing to approve`,
          );
        }
      },
    },
  );

  async function finish(
    outcome: 'succeeded' | 'failed' | 'aborted' | 'rolled-back',
  ): Promise<RolloutStatusView> {
    // An ended rollout lets no site start anything on its own (a timed-out node coming back, say).
    if (book && head.plan && !head.plan.withdrawn) await publishPlan(s.waveIndex, `rollout ${outcome}`);
    head.status = outcome;
    head.waitingFor = undefined;
    await emit({
      type: 'RolloutCompleted',
      outcome,
      upgraded: counts().upgraded,
      failed: counts().failed,
    });
    await condition(allHandlersFinished);
    return statusView();
  }

  /**
   * An OCI reference: a tag is pinned to its digest now and a digest checked against the
   * registry; nodes that install slot images get it converted (once per digest and format),
   * nodes that install OCI images themselves (Kairos) get the pinned reference.
   */
  async function ociImage(request: Extract<RolloutSpec['image'], { type: 'oci' }>): Promise<ImageSource> {
    const wanted = await imageKindsWanted({ selector: spec.selector });
    if (wanted.file && wanted.ociOnly.length > 0) {
      const some = wanted.ociOnly.slice(0, 5).join(', ') + (wanted.ociOnly.length > 5 ? ', …' : '');
      throw ApplicationFailure.create({
        type: 'MixedImageKinds',
        message: `the selector matches nodes that install slot images (file, grub, rauc) and nodes that pull OCI images themselves (kairos: ${some}); expected one kind: start one rollout per kind with a narrower --selector`,
        nonRetryable: true,
      });
    }
    const pinnedAlready = request.reference.includes('@');
    if (!wanted.file && pinnedAlready)
      return pinOciImage({ reference: request.reference, version: spec.version });
    const pinned = await resolveOciImage({ reference: request.reference });
    if (!wanted.file) return pinOciImage({ reference: pinned.reference, version: spec.version });
    const built = await executeChild(imageBuildWorkflow, {
      workflowId: `image/${spec.id}`,
      args: [
        {
          buildId: spec.id,
          request: {
            type: 'oci',
            reference: pinned.reference,
            format: request.format,
            ...(request.rauc ? { rauc: request.rauc } : {}),
          },
          version: spec.version,
        },
      ],
      typedSearchAttributes: [{ key: RolloutIdKey, value: spec.id }],
      staticSummary: `Convert ${pinned.reference} for rollout ${spec.id}`,
    });
    const published = {
      type: 'ImagePublished' as const,
      digest: built.manifest.digest,
      bucket: built.bucket,
      object: built.object,
    };
    if (built.converted?.reused) await emit(published);
    else {
      await emit({ type: 'ImageBuilt', manifest: built.manifest, builder: built.builder }, published, {
        type: 'ImageConverted',
        reference: pinned.reference,
        ociDigest: pinned.digest,
        digest: built.manifest.digest,
        format: request.format,
        ...(built.converted?.bundle ? { bundle: built.converted.bundle } : {}),
      });
    }
    return { type: 'artifact', manifest: built.manifest };
  }

  // ---- 1. the image
  if (!input.carried) await emit({ type: 'RolloutStarted', spec });
  if (!s.image) {
    head.status = 'building';
    try {
      if (spec.image.type === 'rootfs' || spec.image.type === 'containerfile') {
        const built = await executeChild(imageBuildWorkflow, {
          workflowId: `image/${spec.id}`,
          args: [{ buildId: spec.id, request: spec.image, version: spec.version }],
          typedSearchAttributes: [{ key: RolloutIdKey, value: spec.id }],
          staticSummary: `Build image ${spec.version} for rollout ${spec.id}`,
        });
        s.image = { type: 'artifact', manifest: built.manifest };
        s.manifestDigest = built.manifest.digest;
        await emit(
          { type: 'ImageBuilt', manifest: built.manifest, builder: built.builder },
          {
            type: 'ImagePublished',
            digest: built.manifest.digest,
            bucket: built.bucket,
            object: built.object,
          },
        );
      } else if (spec.image.type === 'oci' && patched(OCI_CONVERT_PATCH)) {
        s.image = await ociImage(spec.image);
        s.manifestDigest = s.image.type === 'artifact' ? s.image.manifest.digest : s.image.digest;
      } else if (spec.image.type === 'oci') {
        s.image = await pinOciImage({ reference: spec.image.reference, version: spec.version });
        s.manifestDigest = s.image.digest;
      } else {
        const manifest = await lookupPublishedImage({ digest: spec.image.digest });
        s.image = { type: 'artifact', manifest };
        s.manifestDigest = manifest.digest;
      }
    } catch (err) {
      head.pauseReason = rootMessage(err);
      await finish('failed');
      throw err;
    }
    head.imageDigest = s.manifestDigest;
    upsertSearchAttributes([{ key: ImageDigestKey, value: s.manifestDigest }]);
    upsertMemo({ imageDigest: s.manifestDigest });
  }

  // ---- 2. targets and waves
  if (!book) {
    const { targets, skipped } = await resolveTargets({
      selector: spec.selector,
      version: spec.version,
      allowDowngrade: spec.allowDowngrade,
    });
    const waves = planWaves(
      targets.map((t) => t.nodeId),
      spec.waves,
    );
    // Only the node ids and the versions they ran are kept of the targets, once each.
    const previous = new Map(targets.map((t) => [t.nodeId, t.version]));
    book = openNodeBook(plannedNodes(waves, (id) => previous.get(id)));
    s.skipped = groupSkipped(skipped);
    s.waveStatus = waves.map(() => 'pending');
    await emit({ type: 'TargetsResolved', nodeIds: targets.map((t) => t.nodeId), skipped });
  }
  const nodes: NodeBook = book;

  const breached = () => {
    const { failed, upgraded } = nodes.counts();
    return (
      thresholdBreached(spec.failureThreshold, failed - s.failureBaseline, upgraded + failed) &&
      upgraded + failed >= spec.minExecuted
    );
  };
  const breachReason = () => {
    const { failed, upgraded } = nodes.counts();
    return `${failed - s.failureBaseline} failed of ${upgraded + failed} executed breaches the failure threshold`;
  };
  const historyFull = () => workflowInfo().historyLength > budget || workflowInfo().continueAsNewSuggested;

  /**
   * Signs and publishes what a site may finish on its own from wave `index` should it lose the
   * control plane; withdrawn, the plan keeps holders of an earlier one from starting anything.
   */
  async function publishPlan(index: number, withdraw: string | undefined): Promise<void> {
    if (!s.image || !s.manifestDigest || !patched(FALLBACK_PLAN_PATCH)) return;
    const pending = (id: string) => {
      const i = nodes.indexOf(id);
      return i !== undefined && nodes.state(i) === 'pending';
    };
    const waves = nodes.waves();
    let first = index;
    let planned = fallbackWaves(waves, first, pending, spec.approveWaves);
    if (withdraw) {
      if (!head.plan || head.plan.withdrawn) return;
      if (planned.length === 0) {
        // Any valid set of nodes will do: the newest plan replaces the old one as a whole.
        first = Math.min(index, waves.length - 1);
        planned = [waves[first] ?? []];
      }
    }
    if ((planned[0] ?? []).length === 0) return;
    const request = planRequest({
      spec,
      index: first,
      waves: planned,
      image: s.image,
      manifestDigest: s.manifestDigest,
      failedSoFar: nodes.counts().failed - s.failureBaseline,
      withdraw: withdraw !== undefined,
    });
    const issued = await issuePlan.executeWithOptions(
      {
        ...QUICK_ACTIVITY,
        summary: withdraw
          ? `Withdraw the peer-to-peer plan: ${withdraw}`
          : `Sign the peer-to-peer plan: ${describePlan(first, planned)}`,
      },
      [request],
    );
    head.plan = {
      firstWave: issued.firstWave,
      waves: issued.waves,
      nodes: issued.nodes,
      issuedAt: issued.issuedAt,
      expiresAt: issued.expiresAt,
      withdrawn: issued.withdrawn,
    };
  }

  let inFlight = 0;
  let startedThisRun = 0;
  async function upgradeNode(index: number, wave: number): Promise<void> {
    const nodeId = nodes.id(index);
    inFlight++;
    nodes.set(index, 'running');
    let result: NodeUpgradeResult;
    try {
      const child = await startChild(nodeUpgradeWorkflow, {
        workflowId: nodeWorkflowId(spec.id, nodeId),
        args: [
          {
            rolloutId: spec.id,
            nodeId,
            wave,
            kind: 'upgrade',
            image: s.image,
            manifestDigest: s.manifestDigest,
            allowDowngrade: spec.allowDowngrade,
            timeouts: spec.timeouts,
          },
        ],
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
        typedSearchAttributes: [
          { key: RolloutIdKey, value: spec.id },
          { key: NodeIdKey, value: nodeId },
          { key: WaveKey, value: wave },
          { key: ImageDigestKey, value: s.manifestDigest ?? '' },
        ],
        memo: { rolloutId: spec.id, wave, fromVersion: nodes.fromVersion(index), toVersion: spec.version },
        staticSummary: `Upgrade ${nodeId} to ${spec.version} (rollout ${spec.id}, wave ${wave + 1})`,
      });
      result = await child.result();
    } catch (err) {
      result = { nodeId, outcome: 'failed', detail: (err as Error).message };
    }
    nodes.set(index, result.outcome, result.detail);
    inFlight--;
  }

  /** Runs the wave's pending nodes; returns early when a control, a breach or a full history stops it. */
  async function runWave(index: number): Promise<'done' | 'stopped' | 'continue-as-new'> {
    const [start, end] = nodes.waveRange(index);
    let stop: 'stopped' | 'continue-as-new' | undefined;
    if (s.control === 'run' && !breached()) await publishPlan(index, undefined);
    for (let i = start; i < end; i++) {
      if (nodes.state(i) !== 'pending') continue;
      await condition(() => inFlight < cap || s.control !== 'run' || breached());
      if (s.control !== 'run' || breached()) {
        stop = 'stopped';
        break;
      }
      // A run that started no node yet goes on regardless, so every run makes progress.
      if (historyFull() && startedThisRun > 0) {
        stop = 'continue-as-new';
        break;
      }
      const wait = msUntilWindow(Date.now(), spec.maintenanceWindow);
      if (wait > 0) await condition(() => s.control !== 'run', wait);
      if (s.control !== 'run') {
        stop = 'stopped';
        break;
      }
      startedThisRun++;
      void upgradeNode(i, index);
    }
    const stopping = () => s.control !== 'run' || breached();
    if (patched(WITHDRAW_FIRST_PATCH)) {
      // A stopping rollout tells a cut-off site at once; its nodes in flight may wait on that site.
      await condition(() => inFlight === 0 || stopping());
      if (inFlight > 0) await publishPlan(index, s.control !== 'run' ? s.request.reason : breachReason());
    }
    await condition(() => inFlight === 0);
    if (stop) return stop;
    return s.control !== 'run' || breached() ? 'stopped' : 'done';
  }

  async function rollBack(): Promise<RolloutStatusView> {
    head.status = 'rolling-back';
    head.waitingFor = undefined;
    // Nodes start in wave order, so the newest started is the last in it.
    const toUndo: number[] = [];
    for (let i = nodes.size - 1; i >= 0; i--) {
      if (['upgraded', 'timed-out', 'failed'].includes(nodes.state(i))) toUndo.push(i);
    }
    const failed: string[] = [];
    let active = 0;
    const undo = async (index: number) => {
      active++;
      const nodeId = nodes.id(index);
      const toVersion = nodes.fromVersion(index);
      try {
        const result = await executeChild(nodeUpgradeWorkflow, {
          workflowId: nodeWorkflowId(spec.id, nodeId, 'rollback'),
          args: [
            {
              rolloutId: spec.id,
              nodeId,
              wave: nodes.waveOf(index),
              kind: 'rollback',
              toVersion,
              timeouts: spec.timeouts,
            },
          ],
          typedSearchAttributes: [
            { key: RolloutIdKey, value: spec.id },
            { key: NodeIdKey, value: nodeId },
          ],
          staticSummary: `Roll back ${nodeId} to ${toVersion ?? 'its previous slot'} (rollout ${spec.id})`,
        });
        if (result.outcome !== 'rolled-back') failed.push(nodeId);
        else nodes.set(index, 'rolled-back', nodes.detail(index));
      } catch {
        failed.push(nodeId);
      }
      active--;
    };
    for (const index of toUndo) {
      await condition(() => active < cap);
      void undo(index);
    }
    await condition(() => active === 0);
    await emit({ type: 'RolloutRolledBack', nodeIds: toUndo.map((i) => nodes.id(i)), failed });
    return finish('rolled-back');
  }

  /** Acts on a pause, abort or rollback request; returns the final view when the rollout ends. */
  async function obeyControl(): Promise<RolloutStatusView | undefined> {
    if (s.control !== 'run') await publishPlan(s.waveIndex, s.request.reason);
    if (s.control === 'pause') {
      head.status = 'paused';
      head.waitingFor = 'resume';
      await emit({ type: 'RolloutPaused', reason: s.request.reason, by: s.request.by });
      await condition(() => s.control !== 'pause');
      head.waitingFor = undefined;
      head.pauseReason = undefined;
      if ((s.control as Control) === 'run') {
        s.failureBaseline = nodes.counts().failed;
        head.status = 'running';
        await emit({ type: 'RolloutResumed', by: s.request.by });
        return undefined;
      }
    }
    if (s.control === 'abort') {
      await emit({ type: 'RolloutAborted', reason: s.request.reason, by: s.request.by });
      return finish('aborted');
    }
    if (s.control === 'rollback') return rollBack();
    return undefined;
  }

  // ---- 3. waves
  head.status = 'running';
  const setWaveStatus = (index: number, status: RolloutState['waveStatus'][number]) => {
    if (index < s.waveStatus.length) s.waveStatus[index] = status;
  };
  while (s.waveIndex < nodes.waveCount) {
    const index = s.waveIndex;
    head.currentWave = index;
    if (!s.waveStarted) {
      s.waveStarted = true;
      setWaveStatus(index, 'running');
      upsertSearchAttributes([{ key: WaveKey, value: index }]);
      await emit({ type: 'WaveStarted', wave: index, nodeIds: nodes.waveIds(index) });
    }
    if (!s.waveGatePassed) {
      const ran = await runWave(index);
      if (ran === 'continue-as-new') {
        await condition(allHandlersFinished);
        head.run++;
        s.nodes = nodes.encode();
        return continueAsNew<typeof rolloutWorkflow>({ spec: input.spec, carried: s, historyBudget: budget });
      }
      if (ran === 'stopped') {
        if (breached() && s.control === 'run') {
          setWaveStatus(index, 'failed');
          const reason = breachReason();
          await emit({ type: 'WaveGateFailed', wave: index, ...nodes.tally(index), reason });
          s.control = spec.onFailure === 'rollback' ? 'rollback' : 'pause';
          s.request = { by: 'policy', reason };
          head.pauseReason = reason;
        }
        const ended = await obeyControl();
        if (ended) return ended;
        setWaveStatus(index, 'running');
        continue;
      }
      // Soak: the wave must stay quiet for a while; an operator can still intervene.
      if (spec.soak > 0) {
        head.status = 'soaking';
        await condition(() => s.control !== 'run', spec.soak);
        if (s.control !== 'run') {
          const ended = await obeyControl();
          if (ended) return ended;
          continue;
        }
        head.status = 'running';
      }
      s.waveGatePassed = true;
      setWaveStatus(index, 'passed');
      await emit({ type: 'WaveGatePassed', wave: index, ...nodes.tally(index) });
    }
    if (spec.approveWaves && index < nodes.waveCount - 1 && !s.approved) {
      head.status = 'awaiting-approval';
      head.waitingFor = 'approval';
      await condition(() => s.approved || s.control !== 'run');
      head.waitingFor = undefined;
      if (!s.approved) {
        const ended = await obeyControl();
        if (ended) return ended;
        continue;
      }
      head.status = 'running';
      await emit({ type: 'WaveApproved', wave: index, by: s.request.by });
    }
    s.waveIndex++;
    s.waveStarted = false;
    s.waveGatePassed = false;
    s.approved = false;
  }
  // A rollout that nothing stopped has succeeded; failures under the threshold are in the counts.
  await sleep(0);
  return finish('succeeded');
}

/** The innermost message of a failure chain (child workflow → activity → the error it raised). */
function rootMessage(err: unknown): string {
  let at = err as Error | undefined;
  while (at?.cause instanceof Error) at = at.cause;
  return at?.message ?? String(err);
}
