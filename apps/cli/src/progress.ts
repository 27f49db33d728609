import cliProgress from 'cli-progress';

export interface Progress {
  update(value: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

/**
 * A progress bar with rate and ETA in a terminal; plain lines (about every 5 %) when stdout is not a TTY or
 * CI is set, so logs stay readable. The rate counts the steps this process made: a resumed run's first
 * update (e.g. 5001 of 20000) is its starting point, not 5001 steps done in a moment.
 */
export function createProgress(
  label: string,
  total: number,
  stream: NodeJS.WriteStream = process.stdout,
): Progress {
  const interactive = Boolean(stream.isTTY) && !process.env.CI;
  if (interactive) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {percentage}% | {value}/{total} | {rate}/s | ETA {eta_formatted} | {info}`,
        hideCursor: true,
        etaBuffer: 50,
        stream,
      },
      cliProgress.Presets.shades_classic,
    );
    const started = Date.now();
    let base: number | undefined;
    bar.start(total, 0, { rate: '0.0', info: '' });
    return {
      update(value, fields = {}) {
        base ??= value - 1;
        const rate = (value - base) / Math.max((Date.now() - started) / 1000, 1e-3);
        bar.update(value, { rate: rate.toFixed(1), info: formatFields(fields) });
      },
      stop: () => bar.stop(),
    };
  }
  const every = Math.max(1, Math.round(total / 20));
  const started = Date.now();
  let last = -1;
  let base: number | undefined;
  return {
    update(value, fields = {}) {
      base ??= value - 1;
      if (value !== total && value - last < every) return;
      last = value;
      const seconds = (Date.now() - started) / 1000;
      const rate = (value - base) / Math.max(seconds, 1e-3);
      const eta = rate > 0 ? (total - value) / rate : 0;
      stream.write(
        `${label} ${value}/${total} (${rate.toFixed(1)}/s, ETA ${eta.toFixed(0)} s) ${formatFields(fields)}\n`,
      );
    },
    stop() {},
  };
}

function formatFields(fields: Record<string, string | number>): string {
  return Object.entries(fields)
    .map(
      ([k, v]) =>
        `${k} ${typeof v === 'number' ? (Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(4) : v.toExponential(2)) : v}`,
    )
    .join(' ');
}
