/**
 * Renders `[#######---------]  42% 420/1000` for a terminal. Pure, so it is tested without a TTY.
 * @example renderProgress(420, 1000, 16) // "[######----------]  42% 420/1000"
 */
export function renderProgress(done: number, total: number, width = 30): string {
  const ratio = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(ratio * width);
  const pct = `${Math.floor(ratio * 100)}%`.padStart(4);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${pct} ${done}/${total}`;
}

export interface ProgressBar {
  update(done: number, total: number, note?: string): void;
  done(): void;
}

/**
 * Redraws one line in place on a TTY; elsewhere (CI logs, pipes) prints a line at each 10 %
 * step so logs stay short.
 */
export function createProgressBar({ out = process.stderr, label = "" }: { out?: NodeJS.WriteStream | NodeJS.WritableStream; label?: string } = {}): ProgressBar {
  const tty = Boolean((out as NodeJS.WriteStream).isTTY);
  let lastStep = -1;
  let lastDraw = 0;
  let drawn = false;
  return {
    update(done, total, note = "") {
      const line = `${label}${renderProgress(done, total)}${note ? ` ${note}` : ""}`;
      if (tty) {
        const now = Date.now();
        if (now - lastDraw < 50 && done < total) return;
        lastDraw = now;
        out.write(`\r${line}\x1b[K`);
        drawn = true;
        return;
      }
      const step = total > 0 ? Math.floor((done / total) * 10) : 10;
      if (step !== lastStep) {
        lastStep = step;
        out.write(`${line}\n`);
      }
    },
    done() {
      if (tty && drawn) out.write("\n");
    },
  };
}
