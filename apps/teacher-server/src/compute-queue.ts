import { HttpError } from './http-error';

export interface QueueState {
  /** Computations running. */
  active: number;
  /** Requests waiting for a slot. */
  waiting: number;
  /** Requests allowed to wait. */
  capacity: number;
  /** Velocity requests answered. */
  served: number;
}

/** A counting semaphore with a bounded wait queue: `concurrency` slots, `maxQueue` waiters, then 503. */
export interface ComputeQueue {
  /** Waits for a slot; throws a 503 HttpError (Retry-After 1) when the wait queue is full. */
  acquire(): Promise<void>;
  /** Frees a slot (passes it to the next waiter). */
  release(): void;
  /** Counts one answered request. */
  served(): void;
  state(): QueueState;
}

export function createComputeQueue(concurrency: number, maxQueue: number): ComputeQueue {
  let active = 0;
  let served = 0;
  const waiting: (() => void)[] = [];
  return {
    async acquire() {
      if (active < concurrency) {
        active++;
        return;
      }
      if (waiting.length >= maxQueue) {
        throw new HttpError(
          503,
          'queue_full',
          `The teacher is busy: ${active} running and ${waiting.length} waiting (limit ${maxQueue}). Retry later.`,
          undefined,
          1,
        );
      }
      await new Promise<void>((resolve) => waiting.push(resolve));
    },
    release() {
      const next = waiting.shift();
      if (next) next();
      else active--;
    },
    served() {
      served++;
    },
    state: () => ({ active, waiting: waiting.length, capacity: maxQueue, served }),
  };
}
