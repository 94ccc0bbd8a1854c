// A throwaway Node process running an inline ES module, for tests that need a "test process"
// of their own to kill (and check what it started dies with it).
import { execa, type ResultPromise } from 'execa';

/**
 * Runs `script` in a new Node process and resolves with the process and the first line it
 * prints (the script reports what it started there). `detached`: its own process group.
 */
export async function startScriptProcess(
  script: string,
  options: { detached?: boolean } = {},
): Promise<{ child: ResultPromise<{ reject: false }>; firstLine: string }> {
  const child = execa(process.execPath, ['--input-type=module', '-e', script], {
    reject: false,
    detached: options.detached ?? false,
  });
  const firstLine = await new Promise<string>((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => {
      text += String(chunk);
      if (text.includes('\n')) resolve(text.split('\n')[0]!);
    });
    void child.then((r) => reject(new Error(`the child exited before printing: ${String(r.stderr)}`)));
  });
  return { child, firstLine };
}
