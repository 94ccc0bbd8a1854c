import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './usage-error.ts';

/** One CLI command: its name path (e.g. ['stack', 'up']), its usage line and its runner. */
export interface Command {
  readonly path: readonly string[];
  readonly usage: string;
  /** Returns the process exit code. */
  run(argv: readonly string[]): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Parses argv strictly against the given options; unknown flags, missing values and
 * unexpected positionals become a UsageError that names the flag and shows the usage line.
 */
export function parseFlags<O extends Options>(
  argv: readonly string[],
  options: O,
  usage: string,
  { positionals = 0 }: { positionals?: number } = {},
) {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: positionals > 0 });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: ${usage}`, { cause: err });
  }
  if (parsed.positionals.length > positionals) {
    throw new UsageError(`unexpected argument '${parsed.positionals[positionals]}'\nusage: ${usage}`);
  }
  return parsed;
}

/** Parses a flag value as a TCP port (1-65535), or throws a UsageError naming the flag. */
export function parsePort(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`--${flag}: expected a TCP port between 1 and 65535, got '${value}'`);
  }
  return port;
}
