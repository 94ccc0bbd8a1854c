import { CATALOG, type CatalogEntry } from './catalog.ts';
import { OperationFailed, UsageError } from './usage-error.ts';

function helpText(): string {
  const lines = ['usage: slotflow <command> [flags]', '', 'commands:'];
  for (const c of CATALOG) lines.push(`  ${c.path.join(' ').padEnd(22)} ${c.summary}`);
  lines.push('', "run 'slotflow <command> --help' for a command's flags");
  return lines.join('\n');
}

/** Finds the command whose path is the longest prefix of argv. */
function match(argv: readonly string[]): { entry: CatalogEntry; rest: string[] } | undefined {
  let best: CatalogEntry | undefined;
  for (const c of CATALOG) {
    if (c.path.every((part, i) => argv[i] === part)) {
      if (!best || c.path.length > best.path.length) best = c;
    }
  }
  return best ? { entry: best, rest: argv.slice(best.path.length) } : undefined;
}

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(helpText() + '\n');
    return argv.length === 0 ? 2 : 0;
  }
  const found = match(argv);
  if (!found) {
    const near = CATALOG.filter((c) => c.path[0] === argv[0]).map((c) => c.path.join(' '));
    const hint = near.length ? `did you mean: ${near.join(', ')}` : "run 'slotflow --help' for the list";
    throw new UsageError(`unknown command '${argv.join(' ')}'; ${hint}`);
  }
  const command = await found.entry.load();
  if (found.rest.includes('--help') || found.rest.includes('-h')) {
    process.stdout.write(`usage: ${command.usage}\n${found.entry.summary}\n`);
    return 0;
  }
  return command.run(found.rest);
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  if (err instanceof UsageError) {
    process.stderr.write(`slotflow: ${err.message}\n`);
    process.exitCode = 2;
  } else if (err instanceof OperationFailed) {
    process.stderr.write(`slotflow: ${err.message}\n`);
    process.exitCode = 1;
  } else {
    const e = err as Error;
    process.stderr.write(`slotflow: ${e.message ?? String(err)}\n`);
    if (process.env['SLOTFLOW_DEBUG']) process.stderr.write(`${e.stack ?? ''}\n`);
    process.exitCode = 1;
  }
}
