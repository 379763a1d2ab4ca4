import cliProgress from "cli-progress";

export interface BarState {
  value: number;
  total: number;
  /** Shown before the bar; callers pad labels of one group to one width. */
  label: string;
  /** Shown after the bar ("42% 1.2 GiB of 3 GiB", "3/5 healthy"). */
  detail: string;
}

/**
 * What a `--watch` shows while it waits: bars and lines in the order they were first set,
 * updated in place on a terminal, printed as plain lines when they change otherwise.
 */
export interface ProgressView {
  bar(key: string, state: BarState): void;
  line(key: string, text: string): void;
  stop(): void;
}

/**
 * Bars redrawn in place (cli-progress); for a terminal. cli-progress's own SIGINT handling
 * would stop the bars and swallow Ctrl-C, so `onInterrupt` (the program's) restores the
 * cursor instead and the program exits.
 */
export function terminalProgress(
  stream: NodeJS.WritableStream,
  onInterrupt?: (cleanup: () => void) => () => void,
): ProgressView {
  const multi = new cliProgress.MultiBar(
    {
      format: "{label} {bar} {detail}",
      barsize: 30,
      barCompleteChar: "█",
      barIncompleteChar: "░",
      hideCursor: true,
      gracefulExit: false,
      emptyOnZero: true,
      linewrap: true,
      fps: 10,
      stream,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  const off = onInterrupt?.(() => multi.stop());
  return {
    bar(key, s) {
      const bar = bars.get(key);
      const payload = { label: s.label, detail: s.detail };
      if (!bar) bars.set(key, multi.create(s.total, s.value, payload));
      else {
        bar.setTotal(s.total);
        bar.update(s.value, payload);
      }
    },
    line(key, text) {
      const bar = bars.get(key);
      if (!bar) bars.set(key, multi.create(0, 0, { text }, { format: "{text}" }));
      else bar.update(0, { text });
    },
    stop() {
      off?.();
      multi.stop();
    },
  };
}

/** One line per change (`label: detail`, or the line's text); for pipes, files and CI logs. */
export function plainProgress(write: (text: string) => void): ProgressView {
  const shown = new Map<string, string>();
  const emit = (key: string, text: string) => {
    if (shown.get(key) === text) return;
    shown.set(key, text);
    write(`${text}\n`);
  };
  return {
    bar: (key, s) => emit(key, `${s.label.trim()}: ${s.detail}`),
    line: emit,
    stop() {},
  };
}
