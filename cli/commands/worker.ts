import { createLogger } from '../../runtime/log.ts';
import { parseFlags, type Command } from '../command.ts';
import { cliConfig } from '../context.ts';

const usage = 'slotflow worker';

/** `slotflow worker`: the Temporal worker, event bridge and projector, until SIGTERM/SIGINT. */
export const worker: Command = {
  path: ['worker'],
  usage,
  async run(argv) {
    parseFlags(argv, {}, usage);
    const config = cliConfig();
    const logger = createLogger('worker');
    // Loaded here: the Temporal worker runtime is heavy, and no other command needs it.
    const { startWorker } = await import('../../workers/worker.ts');
    // A workflow bundle built ahead (bundleWorkflowCode of workers/worker.ts's WORKFLOWS_PATH)
    // spares every start the bundling: seconds on an idle host, minutes on a loaded one.
    const bundle = process.env['SLOTFLOW_WORKFLOW_BUNDLE'];
    const running = await startWorker({
      config,
      logger,
      ...(bundle
        ? { workerOptions: { workflowsPath: undefined, workflowBundle: { codePath: bundle } } }
        : {}),
    });
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down: finishing running tasks');
      void running.shutdown();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    await running.done;
    await running.shutdown();
    return 0;
  },
};
