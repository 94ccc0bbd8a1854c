import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import { describeIssues } from '../schema/index.ts';
import { StateFileError } from './errors.ts';

/**
 * Reads a small JSON state file the agent replaces atomically; undefined when there is none.
 * Anything else wrong is a StateFileError: these files guard trust and anti-rollback, so the
 * agent must not silently start over without them.
 */
export async function readStateFile<S extends z.ZodType>(
  file: string,
  schema: S,
  what: string,
): Promise<z.output<S> | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StateFileError(`cannot read ${what} ${file}: ${(err as Error).message}`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new StateFileError(
      `${file} (${what}) is not JSON; it is replaced atomically, so this means disk trouble or tampering — restore it from a backup`,
      { cause: err },
    );
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new StateFileError(
      `${file} is not valid ${what}:\n  - ${describeIssues(parsed.error.issues, raw).join('\n  - ')}`,
      { cause: parsed.error },
    );
  }
  return parsed.data;
}
