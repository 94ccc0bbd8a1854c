import type { NatsConnection } from '@nats-io/nats-core';
import type { ModeSwitch } from './mode-switch.ts';

/**
 * Feeds a mode switch from a NATS connection's status: disconnect and close mean unreachable,
 * reconnect means reachable. Resolves when the connection closes for good.
 */
export async function watchNatsStatus(nc: NatsConnection, mode: ModeSwitch): Promise<void> {
  mode.observe(!nc.isClosed());
  for await (const s of nc.status()) {
    if (s.type === 'disconnect' || s.type === 'close') mode.observe(false);
    else if (s.type === 'reconnect') mode.observe(true);
  }
  mode.observe(false);
}
