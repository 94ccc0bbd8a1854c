// Preloaded into agent processes (`node --import`) by the module-footprint test: records every
// module any import or require() resolves to, one `<pid> <url>` line each, in the file named by
// SLOTFLOW_MODULE_TRACE. Synchronous hooks see ES modules and CommonJS alike, in this thread.
import { appendFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const out = process.env['SLOTFLOW_MODULE_TRACE'];
if (out) {
  const seen = new Set<string>();
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const resolved = nextResolve(specifier, context);
      if (!seen.has(resolved.url)) {
        seen.add(resolved.url);
        appendFileSync(out, `${process.pid} ${resolved.url}\n`);
      }
      return resolved;
    },
  });
}
