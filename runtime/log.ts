import { pino, type Logger } from 'pino';

// One root logger per process, writing JSON lines to stderr so stdout stays free for the
// CLI's human or --json output. Synchronous writes keep the last lines when the CLI exits.
let root: Logger | undefined;

/** Returns a pino child logger named by component (e.g. `stack:temporal`), writing to stderr. */
export function createLogger(component: string): Logger {
  root ??= pino(
    { level: process.env['SLOTFLOW_LOG_LEVEL'] ?? 'info' },
    pino.destination({ dest: 2, sync: true }),
  );
  return root.child({ name: component });
}
