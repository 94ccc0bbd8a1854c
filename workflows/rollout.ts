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
} from './definitions.ts';
import { describePlan, fallbackWaves, planRequest } from './fallback-plan.ts';
import { imageBuildWorkflow } from './image-build.ts';
import { nodeUpgradeWorkflow, type NodeUpgradeResult } from './node-upgrade.ts';
import { msUntilWindow, planWaves } from './planning.ts';
import { initialState, isFinished, recount, type Control, type RolloutState } from './rollout-state.ts';
import { HISTORY_EVENT_BUDGET, MAX_CHILDREN_IN_FLIGHT, QUICK_ACTIVITY } from './timeouts.ts';

const { recordEvents, resolveTargets, pinOciImage, lookupPublishedImage, issuePlan } =
  proxyActivities<Activities>(QUICK_ACTIVITY);

/** Marks histories written since rollouts sign a plan for the peer-to-peer fallback. */
const FALLBACK_PLAN_PATCH = 'fallback-plan';

export interface RolloutInput {
  spec: RolloutSpecInput;
  /** State from the previous run when the rollout continued as new. */
  carried?: RolloutState;
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
export async function rolloutWorkflow(input: RolloutInput): Promise<RolloutState['view']> {
  const parsed = RolloutSpec.safeParse(input.spec);
  if (!parsed.success) {
    throw ApplicationFailure.create({
      type: 'InvalidRolloutSpec',
      message: `invalid rollout spec: ${describeIssues(parsed.error.issues, input.spec).join('; ')}`,
      nonRetryable: true,
    });
  }
  const spec = parsed.data;
  const s = input.carried ?? initialState(spec.id, spec.version);
  const view = s.view;
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

  function request(control: Control, req: OperatorRequest, fallback: string): RolloutState['view'] {
    s.control = control;
    s.request = { by: req.by ?? 'operator', reason: req.reason ?? fallback };
    return view;
  }

  // ---- operator controls: validators refuse requests that mean nothing in the current state
  setHandler(statusQuery, () => view);
  setHandler(
    pauseUpdate,
    (req) => {
      view.pauseReason = req.reason ?? 'paused by operator';
      return request('pause', req, 'paused by operator');
    },
    {
      validator: (_req: OperatorRequest) => {
        if (isFinished(view))
          throw new Error(`rollout ${spec.id} has ended (${view.status}); nothing to pause`);
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
        throw new Error(`rollout ${spec.id} is not paused (status ${view.status}); nothing to resume`);
    },
  });
  setHandler(abortUpdate, (req) => request('abort', req, 'aborted by operator'), {
    validator: (_req: OperatorRequest) => {
      if (isFinished(view)) throw new Error(`rollout ${spec.id} has already ended (${view.status})`);
      if (s.control === 'abort' || s.control === 'rollback')
        throw new Error(
          `rollout ${spec.id} is already ${s.control === 'abort' ? 'aborting' : 'rolling back'}`,
        );
    },
  });
  setHandler(rollbackUpdate, (req) => request('rollback', req, 'rollback requested by operator'), {
    validator: (_req: OperatorRequest) => {
      if (isFinished(view)) throw new Error(`rollout ${spec.id} has already ended (${view.status})`);
      if (s.control === 'rollback') throw new Error(`rollout ${spec.id} is already rolling back`);
    },
  });
  setHandler(
    approveUpdate,
    (req) => {
      s.approved = true;
      s.request = { by: req.by ?? 'operator', reason: req.reason ?? 'approved' };
      return view;
    },
    {
      validator: (_req: OperatorRequest) => {
        if (view.waitingFor !== 'approval') {
          throw new Error(
            `rollout ${spec.id} is not waiting for approval (status ${view.status}); nothing to approve`,
          );
        }
      },
    },
  );

  async function finish(
    outcome: 'succeeded' | 'failed' | 'aborted' | 'rolled-back',
  ): Promise<RolloutState['view']> {
    // An ended rollout lets no site start anything on its own (a timed-out node coming back, say).
    if (view.plan && !view.plan.withdrawn) await publishPlan(s.waveIndex, `rollout ${outcome}`);
    recount(view);
    view.status = outcome;
    view.waitingFor = undefined;
    await emit({
      type: 'RolloutCompleted',
      outcome,
      upgraded: view.counts.upgraded,
      failed: view.counts.failed,
    });
    await condition(allHandlersFinished);
    return view;
  }

  // ---- 1. the image
  if (!input.carried) await emit({ type: 'RolloutStarted', spec });
  if (!s.image) {
    view.status = 'building';
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
      } else if (spec.image.type === 'oci') {
        s.image = await pinOciImage({ reference: spec.image.reference, version: spec.version });
        s.manifestDigest = s.image.digest;
      } else {
        const manifest = await lookupPublishedImage({ digest: spec.image.digest });
        s.image = { type: 'artifact', manifest };
        s.manifestDigest = manifest.digest;
      }
    } catch (err) {
      view.pauseReason = (err as Error).message;
      await finish('failed');
      throw err;
    }
    view.imageDigest = s.manifestDigest;
    upsertSearchAttributes([{ key: ImageDigestKey, value: s.manifestDigest }]);
    upsertMemo({ imageDigest: s.manifestDigest });
  }

  // ---- 2. targets and waves
  if (!s.waves) {
    const { targets, skipped } = await resolveTargets({
      selector: spec.selector,
      version: spec.version,
      allowDowngrade: spec.allowDowngrade,
    });
    s.targets = targets;
    s.waves = planWaves(
      targets.map((t) => t.nodeId),
      spec.waves,
    );
    view.skipped = skipped;
    view.waves = s.waves.map((nodeIds, index) => ({
      index,
      nodeIds,
      status: 'pending',
      succeeded: 0,
      failed: 0,
    }));
    s.waves.forEach((ids, wave) => ids.forEach((id) => (view.nodes[id] = { wave, state: 'pending' })));
    recount(view);
    await emit({ type: 'TargetsResolved', nodeIds: targets.map((t) => t.nodeId), skipped });
  }
  const waves = s.waves;
  const previousVersion = new Map((s.targets ?? []).map((t) => [t.nodeId, t.version]));

  const breached = () =>
    thresholdBreached(
      spec.failureThreshold,
      view.counts.failed - s.failureBaseline,
      view.counts.upgraded + view.counts.failed,
    ) && view.counts.upgraded + view.counts.failed >= spec.minExecuted;
  const historyFull = () => workflowInfo().historyLength > budget || workflowInfo().continueAsNewSuggested;

  /**
   * Signs and publishes what a site may finish on its own from wave `index` should it lose the
   * control plane; withdrawn, the plan keeps holders of an earlier one from starting anything.
   */
  async function publishPlan(index: number, withdraw: string | undefined): Promise<void> {
    if (!s.image || !s.manifestDigest || !patched(FALLBACK_PLAN_PATCH)) return;
    const pending = (id: string) => view.nodes[id]?.state === 'pending';
    let first = index;
    let planned = fallbackWaves(waves, first, pending, spec.approveWaves);
    if (withdraw) {
      if (!view.plan || view.plan.withdrawn) return;
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
      failedSoFar: view.counts.failed - s.failureBaseline,
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
    view.plan = {
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
  async function upgradeNode(nodeId: string, wave: number): Promise<void> {
    inFlight++;
    view.nodes[nodeId] = { wave, state: 'running' };
    s.touched.push(nodeId);
    recount(view);
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
        memo: { rolloutId: spec.id, wave, fromVersion: previousVersion.get(nodeId), toVersion: spec.version },
        staticSummary: `Upgrade ${nodeId} to ${spec.version} (rollout ${spec.id}, wave ${wave + 1})`,
      });
      result = await child.result();
    } catch (err) {
      result = { nodeId, outcome: 'failed', detail: (err as Error).message };
    }
    view.nodes[nodeId] = { wave, state: result.outcome, detail: result.detail };
    inFlight--;
    recount(view);
  }

  /** Runs the wave's pending nodes; returns early when a control, a breach or a full history stops it. */
  async function runWave(index: number): Promise<'done' | 'stopped' | 'continue-as-new'> {
    const wave = waves[index] ?? [];
    let stop: 'stopped' | 'continue-as-new' | undefined;
    if (s.control === 'run' && !breached()) await publishPlan(index, undefined);
    for (const nodeId of wave) {
      if (view.nodes[nodeId]?.state !== 'pending') continue;
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
      void upgradeNode(nodeId, index);
    }
    await condition(() => inFlight === 0);
    if (stop) return stop;
    return s.control !== 'run' || breached() ? 'stopped' : 'done';
  }

  async function rollBack(): Promise<RolloutState['view']> {
    view.status = 'rolling-back';
    view.waitingFor = undefined;
    const toUndo = [...s.touched]
      .reverse()
      .filter((id) => ['upgraded', 'timed-out', 'failed'].includes(view.nodes[id]?.state ?? ''));
    const failed: string[] = [];
    let active = 0;
    const undo = async (nodeId: string) => {
      active++;
      const node = view.nodes[nodeId];
      try {
        const result = await executeChild(nodeUpgradeWorkflow, {
          workflowId: nodeWorkflowId(spec.id, nodeId, 'rollback'),
          args: [
            {
              rolloutId: spec.id,
              nodeId,
              wave: node?.wave ?? 0,
              kind: 'rollback',
              toVersion: previousVersion.get(nodeId),
              timeouts: spec.timeouts,
            },
          ],
          typedSearchAttributes: [
            { key: RolloutIdKey, value: spec.id },
            { key: NodeIdKey, value: nodeId },
          ],
          staticSummary: `Roll back ${nodeId} to ${previousVersion.get(nodeId) ?? 'its previous slot'} (rollout ${spec.id})`,
        });
        if (result.outcome !== 'rolled-back') failed.push(nodeId);
        else if (node) view.nodes[nodeId] = { ...node, state: 'rolled-back' };
      } catch {
        failed.push(nodeId);
      }
      active--;
    };
    for (const nodeId of toUndo) {
      await condition(() => active < cap);
      void undo(nodeId);
    }
    await condition(() => active === 0);
    await emit({ type: 'RolloutRolledBack', nodeIds: toUndo, failed });
    return finish('rolled-back');
  }

  /** Acts on a pause, abort or rollback request; returns the final view when the rollout ends. */
  async function obeyControl(): Promise<RolloutState['view'] | undefined> {
    if (s.control !== 'run') await publishPlan(s.waveIndex, s.request.reason);
    if (s.control === 'pause') {
      view.status = 'paused';
      view.waitingFor = 'resume';
      await emit({ type: 'RolloutPaused', reason: s.request.reason, by: s.request.by });
      await condition(() => s.control !== 'pause');
      view.waitingFor = undefined;
      view.pauseReason = undefined;
      if ((s.control as Control) === 'run') {
        s.failureBaseline = view.counts.failed;
        view.status = 'running';
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
  view.status = 'running';
  while (s.waveIndex < waves.length) {
    const index = s.waveIndex;
    const waveView = view.waves[index];
    view.currentWave = index;
    if (!s.waveStarted) {
      s.waveStarted = true;
      if (waveView) waveView.status = 'running';
      upsertSearchAttributes([{ key: WaveKey, value: index }]);
      await emit({ type: 'WaveStarted', wave: index, nodeIds: waves[index] ?? [] });
    }
    if (!s.waveGatePassed) {
      const ran = await runWave(index);
      if (ran === 'continue-as-new') {
        await condition(allHandlersFinished);
        view.run++;
        return continueAsNew<typeof rolloutWorkflow>({ spec: input.spec, carried: s, historyBudget: budget });
      }
      if (ran === 'stopped') {
        if (breached() && s.control === 'run') {
          recount(view);
          if (waveView) waveView.status = 'failed';
          const reason = `${view.counts.failed - s.failureBaseline} failed of ${view.counts.upgraded + view.counts.failed} executed breaches the failure threshold`;
          await emit({
            type: 'WaveGateFailed',
            wave: index,
            succeeded: waveView?.succeeded ?? 0,
            failed: waveView?.failed ?? 0,
            reason,
          });
          s.control = spec.onFailure === 'rollback' ? 'rollback' : 'pause';
          s.request = { by: 'policy', reason };
          view.pauseReason = reason;
        }
        const ended = await obeyControl();
        if (ended) return ended;
        if (waveView) waveView.status = 'running';
        continue;
      }
      // Soak: the wave must stay quiet for a while; an operator can still intervene.
      if (spec.soak > 0) {
        view.status = 'soaking';
        await condition(() => s.control !== 'run', spec.soak);
        if (s.control !== 'run') {
          const ended = await obeyControl();
          if (ended) return ended;
          continue;
        }
        view.status = 'running';
      }
      s.waveGatePassed = true;
      if (waveView) waveView.status = 'passed';
      await emit({
        type: 'WaveGatePassed',
        wave: index,
        succeeded: waveView?.succeeded ?? 0,
        failed: waveView?.failed ?? 0,
      });
    }
    if (spec.approveWaves && index < waves.length - 1 && !s.approved) {
      view.status = 'awaiting-approval';
      view.waitingFor = 'approval';
      await condition(() => s.approved || s.control !== 'run');
      view.waitingFor = undefined;
      if (!s.approved) {
        const ended = await obeyControl();
        if (ended) return ended;
        continue;
      }
      view.status = 'running';
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
