import { createServer, type Server } from 'node:net';
import { PortInUseError } from './errors.ts';

/** A port a server will listen on, and how an operator moves it elsewhere. */
export interface PortClaim {
  readonly host: string;
  readonly port: number;
  /** What listens there, e.g. "Temporal gRPC frontend". */
  readonly role: string;
  /** How to pick another port, e.g. "--temporal-port". */
  readonly change: string;
}

function listen(host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => resolve(server));
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * Binds each claimed port briefly and releases it; throws PortInUseError naming the first
 * port that is taken. Checking before launch turns "another server already listens there"
 * into a clear message instead of a server that dies with a buried log line.
 */
export async function assertPortsFree(claims: readonly PortClaim[]): Promise<void> {
  const seen = new Map<number, PortClaim>();
  for (const claim of claims) {
    const twin = seen.get(claim.port);
    if (twin) {
      throw new PortInUseError(
        `port ${claim.port} is given to both the ${twin.role} and the ${claim.role}; ` +
          `give one of them another port (${claim.change})`,
        claim.port,
      );
    }
    seen.set(claim.port, claim);
    let server: Server;
    try {
      server = await listen(claim.host, claim.port);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'EADDRINUSE' ? 'is already in use' : `cannot be bound (${code ?? String(err)})`;
      throw new PortInUseError(
        `port ${claim.port} on ${claim.host} for the ${claim.role} ${why}; ` +
          `stop whatever listens there or pick another port with ${claim.change}`,
        claim.port,
        { cause: err },
      );
    }
    await close(server);
  }
}

/** Asks the kernel for `count` distinct free ports on host (held together, then released). */
export async function pickFreePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) servers.push(await listen(host, 0));
    return servers.map((s) => {
      const address = s.address();
      if (address === null || typeof address === 'string') throw new Error('expected a TCP address');
      return address.port;
    });
  } finally {
    await Promise.all(servers.map(close));
  }
}
