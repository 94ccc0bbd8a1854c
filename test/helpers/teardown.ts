// Teardown that always ends: each step has its own time limit, and a step that fails or hangs
// is reported without keeping the later steps from running.

/** One thing to undo, named for the report. */
export type TeardownStep = readonly [what: string, undo: () => Promise<unknown>];

/** Runs the steps in order, each bounded by `limitMs`; resolves with what went wrong (logged too). */
export async function tearDown(steps: readonly TeardownStep[], limitMs = 20_000): Promise<string[]> {
  const problems: string[] = [];
  for (const [what, undo] of steps) {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`did not finish within ${limitMs} ms`)), limitMs);
    });
    try {
      await Promise.race([undo(), limit]);
    } catch (err) {
      problems.push(`${what}: ${(err as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }
  if (problems.length > 0) console.error(`teardown problems:\n  ${problems.join('\n  ')}`);
  return problems;
}
