import type { JetStreamClient } from '@nats-io/jetstream';
import { ApplicationFailure } from '@temporalio/common';
import { newNonce, signCommand, type SigningKeySource } from '../signing/index.ts';
import { COMMANDS_STREAM, SchemaError, commandSubject, type CommandInput } from '../schema/index.ts';

/** A command as the workflow describes it; the activity adds nonce, times and the signature. */
export type CommandRequest = CommandInput extends infer C
  ? C extends unknown
    ? Omit<C, 'nonce' | 'issuedAt' | 'expiresAt' | 'v'> & { ttlMs: number }
    : never
  : never;

/** Activities that sign commands and put them on the node's durable command subject. */
export function createCommandActivities({ js, signer }: { js: JetStreamClient; signer: SigningKeySource }) {
  return {
    /**
     * Signs and publishes a command. The command id is the Nats-Msg-Id: a retry within the
     * duplicate window is dropped by the stream, and the agent refuses a command id it handled.
     */
    async sendCommand(
      request: CommandRequest,
    ): Promise<{ commandId: string; seq: number; duplicate: boolean }> {
      const { ttlMs, ...rest } = request;
      const now = Date.now();
      const key = await signer.current(new Date(now));
      let signed;
      try {
        signed = signCommand(
          {
            ...rest,
            v: 1,
            nonce: newNonce(),
            issuedAt: new Date(now).toISOString(),
            expiresAt: new Date(now + ttlMs).toISOString(),
          } as CommandInput,
          key,
        );
      } catch (err) {
        if (err instanceof SchemaError) {
          throw ApplicationFailure.create({
            type: 'InvalidCommand',
            message: err.message,
            nonRetryable: true,
          });
        }
        throw err;
      }
      const ack = await js.publish(commandSubject(signed.command.nodeId), JSON.stringify(signed), {
        msgID: signed.command.commandId,
        expect: { streamName: COMMANDS_STREAM },
      });
      return { commandId: signed.command.commandId, seq: ack.seq, duplicate: ack.duplicate };
    },
  };
}
