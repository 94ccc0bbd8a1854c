import { open } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** The marker the guest's /sbin/init prints once per boot. */
export const BOOT_MARKER = /slotflow-lab: booted slot (\w+)/g;

/**
 * What GRUB prints when it boots deploy/grub/grub.cfg's entry for "no slot may boot": every slot
 * had used its try and none was committed; it resets the tries and restarts.
 */
export const TRIES_RESET = 'Booting `slotflow: no slot may boot';

/** One boot seen on a console: the slot it came up on and where in the log it began. */
export interface ConsoleBoot {
  readonly slot: string;
  readonly offset: number;
}

/** Every boot a console log shows, in order. */
export function bootsIn(text: string): ConsoleBoot[] {
  return [...text.matchAll(BOOT_MARKER)].map((m) => ({ slot: m[1]!, offset: m.index }));
}

/** The console log's text from `offset` on (empty when the file does not exist yet). */
export async function readConsole(path: string, offset = 0): Promise<string> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    return '';
  }
  try {
    const size = (await handle.stat()).size;
    if (size <= offset) return '';
    const buffer = Buffer.alloc(size - offset);
    await handle.read(buffer, 0, buffer.length, offset);
    // The firmware draws with escape sequences; only the text matters to the lab.
    return buffer.toString('latin1');
  } finally {
    await handle.close();
  }
}

/**
 * Polls the console log until `pattern` matches text written at or after `offset`; resolves with
 * the match and its absolute offset, or with undefined once `timeoutMs` has passed or `stop()`
 * says to give up (the VM died).
 */
export async function pollConsole(
  path: string,
  pattern: RegExp,
  o: { offset: number; timeoutMs: number; stop?: () => boolean },
): Promise<{ match: RegExpExecArray; offset: number } | undefined> {
  const deadline = Date.now() + o.timeoutMs;
  const flags = pattern.flags.replace('g', '');
  for (;;) {
    const text = await readConsole(path, o.offset);
    const match = new RegExp(pattern.source, flags).exec(text);
    if (match) return { match, offset: o.offset + match.index };
    if (Date.now() > deadline || o.stop?.()) return undefined;
    await sleep(200);
  }
}
