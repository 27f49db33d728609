import { describe, expect, it, vi } from 'vitest';
import { createProgress } from './progress';

/** A non-TTY stream that records what is written. */
function recorder() {
  const lines: string[] = [];
  return {
    lines,
    stream: { isTTY: false, write: (s: string) => lines.push(s) } as unknown as NodeJS.WriteStream,
  };
}

describe('progress lines', () => {
  it('count the rate from where a resumed run started, and print about every 5 %', () => {
    vi.useFakeTimers();
    try {
      const { lines, stream } = recorder();
      const progress = createProgress('train', 200, stream);
      // resumed at step 100: the first update is step 101, one second after the start
      for (let step = 101; step <= 200; step++) {
        vi.advanceTimersByTime(1000);
        progress.update(step, { loss: 0.5 });
      }
      expect(lines[0]).toBe('train 101/200 (1.0/s, ETA 99 s) loss 0.5000\n');
      expect(lines.at(-1)).toBe('train 200/200 (1.0/s, ETA 0 s) loss 0.5000\n');
      expect(lines.length).toBe(11); // 101, 111, …, 191 (every 10 steps: 5 % of 200) and the last
    } finally {
      vi.useRealTimers();
    }
  });
});
