import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { BuildError } from '../../activities/builders/builder.ts';
import { parseOciReference } from '../../activities/builders/oci.ts';
import { TASK_QUEUE } from '../../workflows/definitions.ts';
import type { imageBuildWorkflow } from '../../workflows/image-build.ts';
import { parseFlags, type Command } from '../command.ts';
import { cliConfig, printJson, withTemporal } from '../context.ts';
import { RAUC_FLAG_OPTIONS, raucRequest } from '../rauc-flags.ts';
import { OperationFailed, UsageError } from '../usage-error.ts';

const usage =
  'slotflow image build (--rootfs DIR | --containerfile FILE) --version V [--format ext4|squashfs|rauc] ' +
  '[--rauc-compatible C --rauc-cert PEM --rauc-key PEM [--rauc-intermediate PEM] [--rauc-bundle-format verity|plain]] ' +
  '[--push REPO[:TAG]] [--id ID] [--json]';

/** `slotflow image build`: builds and publishes a slot image as its own workflow, and with `--push` pushes the OCI image. */
export const imageBuild: Command = {
  path: ['image', 'build'],
  usage,
  async run(argv) {
    const { values } = parseFlags(
      argv,
      {
        rootfs: { type: 'string' },
        containerfile: { type: 'string' },
        version: { type: 'string' },
        format: { type: 'string' },
        ...RAUC_FLAG_OPTIONS,
        id: { type: 'string' },
        push: { type: 'string' },
        json: { type: 'boolean' },
      },
      usage,
    );
    if (!values.version)
      throw new UsageError(`--version is required (the OS version the image carries)\nusage: ${usage}`);
    if (!!values.rootfs === !!values.containerfile) {
      throw new UsageError(`give exactly one of --rootfs DIR or --containerfile FILE\nusage: ${usage}`);
    }
    const format = values.format ?? 'ext4';
    if (format !== 'ext4' && format !== 'squashfs' && format !== 'rauc') {
      throw new UsageError(`--format: expected ext4, squashfs or rauc, got '${format}'`);
    }
    const rauc = raucRequest(format, values, usage);
    const buildId =
      values.id ?? `b-${values.version.replace(/[^A-Za-z0-9_-]/g, '-')}-${randomBytes(3).toString('hex')}`;
    if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/.test(buildId)) {
      throw new UsageError(`--id: expected letters, digits, '-' or '_', got '${buildId}'`);
    }
    if (values.push !== undefined) {
      try {
        if (parseOciReference(values.push).digest) throw new BuildError('a digest is what the push yields');
      } catch (err) {
        throw new UsageError(
          `--push: expected REPO[:TAG] such as 127.0.0.1:5322/os:2.0.0 (or os:2.0.0 for the registry in SLOTFLOW_REGISTRY), got '${values.push}': ${(err as Error).message}`,
        );
      }
    }
    // A RAUC bundle carries an ext4 slot image.
    const request = values.rootfs
      ? {
          type: 'rootfs' as const,
          path: resolve(values.rootfs),
          format: format === 'squashfs' ? ('squashfs' as const) : ('ext4' as const),
          ...(rauc ? { rauc } : {}),
        }
      : {
          type: 'containerfile' as const,
          path: resolve(values.containerfile as string),
          ...(rauc ? { rauc } : {}),
        };
    const config = cliConfig();
    return withTemporal(config, async (client) => {
      if (!values.json)
        process.stderr.write(`building image ${values.version} (workflow image/${buildId})…\n`);
      try {
        const result = await client.workflow.execute<typeof imageBuildWorkflow>('imageBuildWorkflow', {
          workflowId: `image/${buildId}`,
          taskQueue: TASK_QUEUE,
          args: [
            {
              buildId,
              request,
              version: values.version as string,
              ...(values.push ? { push: values.push } : {}),
            },
          ],
          staticSummary: `Build image ${values.version}`,
        });
        if (values.json) printJson({ buildId, ...result });
        else if (result.pushed) {
          process.stdout.write(
            `${result.pushed.reference}\n  pushed ${values.push}; slot image ${result.manifest.digest} (${result.manifest.format}, ${result.manifest.size} bytes) published to ${result.bucket}\n  roll it out: slotflow rollout start --image ${result.pushed.reference} --version ${result.manifest.version}\n`,
          );
        } else {
          process.stdout.write(
            `${result.manifest.digest}\n  version ${result.manifest.version}, ${result.manifest.format}, ${result.manifest.size} bytes in ${result.manifest.chunks.length} chunks\n  built by ${result.builder}, published to ${result.bucket}\n  roll it out: slotflow rollout start --image ${result.manifest.digest} --version ${result.manifest.version}\n`,
          );
        }
        return 0;
      } catch (err) {
        if (err instanceof WorkflowFailedError) {
          throw new OperationFailed(
            `image build failed: ${(err.cause?.cause as Error | undefined)?.message ?? err.cause?.message ?? err.message}`,
            { cause: err },
          );
        }
        throw err;
      }
    });
  },
};
