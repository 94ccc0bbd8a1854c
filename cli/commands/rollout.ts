import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseOciReference } from '../../activities/builders/oci.ts';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
} from '@temporalio/client';
import { RolloutSpec, SchemaError, isValidId, parseWith, type RolloutSpecInput } from '../../schema/index.ts';
import {
  abortUpdate,
  approveUpdate,
  pauseUpdate,
  resumeUpdate,
  rollbackUpdate,
  rolloutWorkflowId,
  statusQuery,
  type RolloutStatusView,
} from '../../workflows/definitions.ts';
import { parseFlags, type Command } from '../command.ts';
import { cliConfig, printJson, withTemporal } from '../context.ts';
import { createStatusPrinter, isFinal, renderStatus } from '../progress.ts';
import { startRollout } from '../rollout-client.ts';
import { rolloutSearchUrl, temporalUiBase } from '../ui-url.ts';
import { RAUC_FLAG_OPTIONS, raucRequest } from '../rauc-flags.ts';
import { OperationFailed, UsageError } from '../usage-error.ts';

const startUsage =
  'slotflow rollout start (--image REF | --rootfs DIR | --containerfile FILE) --version V [--format ext4|squashfs|rauc] [--rauc-compatible C --rauc-cert PEM --rauc-key PEM [--rauc-intermediate PEM] [--rauc-bundle-format verity|plain]] [--id ID] [--selector k=v] [--waves 1,10%,100%] [--max-unavailable N] [--failure-threshold 10%] [--on-failure pause|rollback] [--soak 30s] [--approve-waves] [--allow-downgrade] [--wait [--wait-for operator|end]] [--json]';

async function requirePath(flag: string, path: string, dir: boolean): Promise<string> {
  const full = resolve(path);
  try {
    const info = await stat(full);
    if (info.isDirectory() !== dir) throw new Error('wrong kind');
  } catch {
    throw new UsageError(
      `--${flag}: expected ${dir ? 'a directory' : 'a file'} at ${full} (the worker reads it, so run this on the worker's host)`,
    );
  }
  return full;
}

/** Exit code of a rollout that waits for an operator (paused, or a wave awaiting approval). */
export const EXIT_NEEDS_OPERATOR = 3;

/** True while the rollout waits for an operator's decision. */
export function needsOperator(view: RolloutStatusView): boolean {
  return view.status === 'paused' || view.status === 'awaiting-approval';
}

/** Exit code of a rollout a wait returned on: 0 only when it succeeded; 3 when it waits for an operator. */
export function exitCodeOf(view: RolloutStatusView): number {
  if (needsOperator(view)) return EXIT_NEEDS_OPERATOR;
  return view.status === 'succeeded' ? 0 : 1;
}

/** What an operator can run next for a rollout that waits for one. */
export function nextSteps(view: RolloutStatusView): string[] {
  const id = view.rolloutId;
  if (view.status === 'awaiting-approval') {
    return [
      `slotflow rollout approve ${id}`,
      `slotflow rollout abort ${id}`,
      `slotflow rollout rollback ${id}`,
    ];
  }
  if (view.status === 'paused') {
    return [
      `slotflow rollout resume ${id}`,
      `slotflow rollout rollback ${id}`,
      `slotflow rollout abort ${id}`,
    ];
  }
  return [];
}

/** Why a rollout waits for an operator, in one line. */
function waitReason(view: RolloutStatusView): string {
  if (view.status === 'awaiting-approval') {
    // currentWave is the wave that passed its gate; the next one waits.
    return `wave ${view.currentWave + 2} of ${view.waves.length} waits for approval (wave ${view.currentWave + 1} passed its gate)`;
  }
  return view.pauseReason ?? 'paused by an operator';
}

/** Until when a wait follows a rollout: its end, or the first moment it needs an operator. */
export type WaitFor = 'end' | 'operator';

const WAIT_FOR: readonly WaitFor[] = ['end', 'operator'];

function waitForFlag(value: string | undefined): WaitFor {
  if (value === undefined) return 'operator';
  if ((WAIT_FOR as readonly string[]).includes(value)) return value as WaitFor;
  throw new UsageError(
    `--wait-for: expected 'end' (block until the rollout ends) or 'operator' (return as soon as it needs one; the default), got '${value}'`,
  );
}

/**
 * Prints where a followed rollout stopped and returns the exit code: its outcome, or
 * EXIT_NEEDS_OPERATOR with the reason and the commands to run next.
 */
function report(view: RolloutStatusView, json: boolean): number {
  const code = exitCodeOf(view);
  if (json) {
    printJson(
      code === EXIT_NEEDS_OPERATOR ? { ...view, waitReason: waitReason(view), next: nextSteps(view) } : view,
    );
  } else if (code === EXIT_NEEDS_OPERATOR) {
    process.stdout.write(
      `rollout ${view.rolloutId} needs an operator: ${waitReason(view)}\n` +
        `  next: ${nextSteps(view).join('  |  ')}\n` +
        `  or keep following it: slotflow rollout watch ${view.rolloutId} [--wait-for end]\n`,
    );
  }
  return code;
}

/**
 * Follows a rollout until it ends (or, with `until: 'operator'`, until it first waits for an
 * operator), redrawing progress on a terminal (nothing on stdout with --json).
 */
async function follow(
  client: Client,
  rolloutId: string,
  json: boolean,
  ui?: string,
  until: WaitFor = 'end',
): Promise<RolloutStatusView> {
  const handle = client.workflow.getHandle(rolloutWorkflowId(rolloutId));
  const printer = json ? undefined : createStatusPrinter();
  for (;;) {
    let view: RolloutStatusView | undefined;
    try {
      view = await handle.query(statusQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError)
        throw new OperationFailed(`rollout ${rolloutId} not found`, { cause: err });
    }
    if (view) {
      printer?.show(renderStatus(view, ui));
      if (isFinal(view.status) || (until === 'operator' && needsOperator(view))) {
        printer?.done();
        return view;
      }
    }
    const description = await handle.describe();
    if (description.status.name !== 'RUNNING' && description.status.name !== 'CONTINUED_AS_NEW') {
      const final = await handle.result().catch(() => undefined);
      printer?.done();
      if (final) return final;
      throw new OperationFailed(
        `rollout ${rolloutId} ended ${description.status.name.toLowerCase()} without a result; see the Temporal UI`,
      );
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** `slotflow rollout start`. */
export const rolloutStart: Command = {
  path: ['rollout', 'start'],
  usage: startUsage,
  async run(argv) {
    const { values } = parseFlags(
      argv,
      {
        image: { type: 'string' },
        rootfs: { type: 'string' },
        containerfile: { type: 'string' },
        version: { type: 'string' },
        format: { type: 'string' },
        ...RAUC_FLAG_OPTIONS,
        id: { type: 'string' },
        selector: { type: 'string' },
        waves: { type: 'string' },
        'max-unavailable': { type: 'string' },
        'failure-threshold': { type: 'string' },
        'min-executed': { type: 'string' },
        'on-failure': { type: 'string' },
        soak: { type: 'string' },
        'approve-waves': { type: 'boolean' },
        'allow-downgrade': { type: 'boolean' },
        wait: { type: 'boolean' },
        'wait-for': { type: 'string' },
        json: { type: 'boolean' },
      },
      startUsage,
    );
    const sources = [values.image, values.rootfs, values.containerfile].filter((v) => v !== undefined);
    if (sources.length !== 1)
      throw new UsageError(`give exactly one of --image, --rootfs or --containerfile\nusage: ${startUsage}`);
    if (!values.version) throw new UsageError(`--version is required\nusage: ${startUsage}`);
    if (values.image !== undefined && !/^sha256:/.test(values.image)) {
      try {
        parseOciReference(values.image);
      } catch (err) {
        throw new UsageError(`--image: ${(err as Error).message}`);
      }
    }
    const format = values.format ?? 'ext4';
    if (format !== 'ext4' && format !== 'squashfs' && format !== 'rauc')
      throw new UsageError(`--format: expected ext4, squashfs or rauc, got '${format}'`);
    const published = values.image !== undefined && /^sha256:/.test(values.image);
    if (values.format !== undefined && published)
      throw new UsageError(
        `--format applies to an image slotflow builds or converts (--rootfs, --containerfile, an OCI --image); ${values.image} is already published in its own format`,
      );
    if (values.containerfile && format === 'squashfs')
      throw new UsageError(`--format squashfs: a Containerfile build makes an ext4 image; use ext4 or rauc`);
    const rauc = raucRequest(format, values, startUsage);
    // A RAUC bundle carries an ext4 slot image.
    const fs = format === 'squashfs' ? ('squashfs' as const) : ('ext4' as const);
    const bundle = rauc ? { rauc } : {};
    const image: RolloutSpecInput['image'] = values.rootfs
      ? { type: 'rootfs', path: await requirePath('rootfs', values.rootfs, true), format: fs, ...bundle }
      : values.containerfile
        ? {
            type: 'containerfile',
            path: await requirePath('containerfile', values.containerfile, false),
            ...bundle,
          }
        : published
          ? { type: 'published', digest: values.image as string }
          : { type: 'oci', reference: values.image as string, format: fs, ...bundle };
    const number = (flag: string, v: string | undefined) => {
      if (v === undefined) return undefined;
      if (!/^\d+$/.test(v)) throw new UsageError(`--${flag}: expected a whole number, got '${v}'`);
      return Number(v);
    };
    // Checked before anything starts, so a bad value starts no rollout.
    const until = waitForFlag(values['wait-for']);
    const input: RolloutSpecInput = {
      id: values.id ?? `r-${new Date().toISOString().slice(0, 10)}-${randomBytes(3).toString('hex')}`,
      image,
      version: values.version,
      ...(values.selector !== undefined ? { selector: values.selector } : {}),
      ...(values.waves !== undefined ? { waves: values.waves } : {}),
      ...(values['max-unavailable'] !== undefined
        ? { maxUnavailable: number('max-unavailable', values['max-unavailable']) }
        : {}),
      ...(values['failure-threshold'] !== undefined ? { failureThreshold: values['failure-threshold'] } : {}),
      ...(values['min-executed'] !== undefined
        ? { minExecuted: number('min-executed', values['min-executed']) }
        : {}),
      ...(values['on-failure'] !== undefined ? { onFailure: values['on-failure'] as 'pause' } : {}),
      ...(values.soak !== undefined ? { soak: values.soak } : {}),
      approveWaves: values['approve-waves'] ?? false,
      allowDowngrade: values['allow-downgrade'] ?? false,
    };
    try {
      parseWith(RolloutSpec, input, 'rollout');
    } catch (err) {
      if (err instanceof SchemaError) throw new UsageError(err.message, { cause: err });
      throw err;
    }
    const config = cliConfig();
    return withTemporal(config, async (client) => {
      try {
        await startRollout(client, input);
      } catch (err) {
        if (err instanceof SchemaError)
          throw new UsageError(err.message.replace(/^invalid rollout spec/, 'invalid rollout'), {
            cause: err,
          });
        if (err instanceof WorkflowExecutionAlreadyStartedError) {
          throw new UsageError(`a rollout with id ${input.id} already exists; pick another --id`, {
            cause: err,
          });
        }
        throw err;
      }
      const base = await temporalUiBase(config);
      const ui = base ? rolloutSearchUrl(base, config.temporal.namespace, input.id) : undefined;
      if (!values.wait && values['wait-for'] === undefined) {
        if (values.json) printJson({ rolloutId: input.id, workflowId: rolloutWorkflowId(input.id), ui });
        else
          process.stdout.write(
            `started rollout ${input.id}\n  follow it: slotflow rollout watch ${input.id}\n${ui ? `  Temporal UI: ${ui}\n` : ''}`,
          );
        return 0;
      }
      if (!values.json) process.stdout.write(`started rollout ${input.id}\n`);
      const final = await follow(client, input.id, values.json ?? false, ui, until);
      return report(final, values.json ?? false);
    });
  },
};

function idArg(positionals: string[], usage: string): string {
  const id = positionals[0];
  if (!id) throw new UsageError(`a rollout id is required\nusage: ${usage}`);
  if (!isValidId(id)) throw new UsageError(`'${id}' is not a rollout id (letters, digits, '-' or '_')`);
  return id;
}

/** `slotflow rollout status ID`. */
export const rolloutStatusCommand: Command = {
  path: ['rollout', 'status'],
  usage: 'slotflow rollout status ID [--json]',
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { json: { type: 'boolean' } }, this.usage, {
      positionals: 1,
    });
    const id = idArg(positionals, this.usage);
    const config = cliConfig();
    return withTemporal(config, async (client) => {
      const handle = client.workflow.getHandle(rolloutWorkflowId(id));
      let view: RolloutStatusView;
      try {
        view = await handle.query(statusQuery);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError)
          throw new OperationFailed(`no rollout ${id}; list them with 'slotflow rollout list'`, {
            cause: err,
          });
        throw err;
      }
      if (values.json) printJson(view);
      else {
        const base = await temporalUiBase(config);
        process.stdout.write(
          `${renderStatus(view, base ? rolloutSearchUrl(base, config.temporal.namespace, id) : undefined)}\n`,
        );
      }
      return 0;
    });
  },
};

/**
 * `slotflow rollout watch ID`: follow until the rollout ends or needs an operator (`--wait-for
 * end`: until it ends); the exit code is the outcome, or 3 while it waits for an operator.
 */
export const rolloutWatch: Command = {
  path: ['rollout', 'watch'],
  usage: 'slotflow rollout watch ID [--wait-for operator|end] [--json]',
  async run(argv) {
    const { values, positionals } = parseFlags(
      argv,
      { json: { type: 'boolean' }, 'wait-for': { type: 'string' } },
      this.usage,
      { positionals: 1 },
    );
    const id = idArg(positionals, this.usage);
    const until = waitForFlag(values['wait-for']);
    const config = cliConfig();
    return withTemporal(config, async (client) => {
      const base = await temporalUiBase(config);
      const final = await follow(
        client,
        id,
        values.json ?? false,
        base ? rolloutSearchUrl(base, config.temporal.namespace, id) : undefined,
        until,
      );
      return report(final, values.json ?? false);
    });
  },
};

/** `slotflow rollout list`. */
export const rolloutList: Command = {
  path: ['rollout', 'list'],
  usage: 'slotflow rollout list [--json]',
  async run(argv) {
    const { values } = parseFlags(argv, { json: { type: 'boolean' } }, this.usage);
    const config = cliConfig();
    return withTemporal(config, async (client) => {
      const rows: {
        rolloutId: string;
        state: string;
        startedAt: string;
        closedAt?: string;
        version?: unknown;
        waves?: unknown;
      }[] = [];
      for await (const wf of client.workflow.list({ query: 'WorkflowType="rolloutWorkflow"' })) {
        if (rows.some((r) => r.rolloutId === wf.workflowId.replace(/^rollout\//, ''))) continue; // continued-as-new runs
        rows.push({
          rolloutId: wf.workflowId.replace(/^rollout\//, ''),
          state: wf.status.name.toLowerCase(),
          startedAt: wf.startTime.toISOString(),
          ...(wf.closeTime ? { closedAt: wf.closeTime.toISOString() } : {}),
          version: wf.memo?.['version'],
          waves: wf.memo?.['waves'],
        });
        if (rows.length >= 200) break;
      }
      if (values.json) printJson(rows);
      else if (rows.length === 0)
        process.stdout.write("no rollouts yet; start one with 'slotflow rollout start'\n");
      else
        for (const r of rows)
          process.stdout.write(
            `${r.rolloutId.padEnd(28)} ${r.state.padEnd(16)} ${String(r.version ?? '').padEnd(12)} ${r.startedAt}\n`,
          );
      return 0;
    });
  },
};

const controls = [
  ['pause', pauseUpdate],
  ['resume', resumeUpdate],
  ['abort', abortUpdate],
  ['approve', approveUpdate],
  ['rollback', rollbackUpdate],
] as const;

/** `slotflow rollout pause|resume|abort|approve|rollback ID`. */
function controlCommand(name: (typeof controls)[number][0], update: (typeof controls)[number][1]): Command {
  const usage = `slotflow rollout ${name} ID [--reason TEXT] [--json]`;
  return {
    path: ['rollout', name],
    usage,
    async run(argv: readonly string[]) {
      const { values, positionals } = parseFlags(
        argv,
        { reason: { type: 'string' }, json: { type: 'boolean' } },
        usage,
        { positionals: 1 },
      );
      const id = idArg(positionals, usage);
      const config = cliConfig();
      return withTemporal(config, async (client) => {
        const by = process.env['USER'] ? `${process.env['USER']} (cli)` : 'cli';
        try {
          const view = await client.workflow
            .getHandle(rolloutWorkflowId(id))
            .executeUpdate(update, { args: [{ by, ...(values.reason ? { reason: values.reason } : {}) }] });
          if (values.json) printJson(view);
          else process.stdout.write(`${name}: done; rollout ${id} is ${view.status}\n`);
          return 0;
        } catch (err) {
          if (err instanceof WorkflowUpdateFailedError) {
            throw new OperationFailed(
              `${name} refused: ${(err.cause as Error | undefined)?.message ?? err.message}`,
              { cause: err },
            );
          }
          if (err instanceof WorkflowNotFoundError)
            throw new OperationFailed(`no running rollout ${id}`, { cause: err });
          throw err;
        }
      });
    },
  };
}

/** `slotflow rollout pause|resume|abort|approve|rollback ID`, by name. */
export const rolloutControls = Object.fromEntries(
  controls.map(([name, update]) => [name, controlCommand(name, update)]),
) as Record<(typeof controls)[number][0], Command>;
