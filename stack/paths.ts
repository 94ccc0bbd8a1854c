import { homedir } from 'node:os';
import { join } from 'node:path';

type Env = Readonly<Record<string, string | undefined>>;

/** `$SLOTFLOW_HOME`, or `~/.slotflow`: keys and local state. */
export function slotflowHome(env: Env = process.env): string {
  return env['SLOTFLOW_HOME'] || join(homedir(), '.slotflow');
}

/** `$SLOTFLOW_CACHE`, or `~/.cache/slotflow`: provisioned tools, safe to delete. */
export function slotflowCache(env: Env = process.env): string {
  return env['SLOTFLOW_CACHE'] || join(homedir(), '.cache', 'slotflow');
}

/** Where provisioned binaries live: `$SLOTFLOW_CACHE/bin`. */
export function cacheBinDir(env: Env = process.env): string {
  return join(slotflowCache(env), 'bin');
}

/** The local stack's default data directory: `$SLOTFLOW_HOME/stack`. */
export function defaultStackDir(env: Env = process.env): string {
  return join(slotflowHome(env), 'stack');
}
