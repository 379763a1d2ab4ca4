// CPU time and peak resident memory of a running process, read from /proc (Linux), so that
// our agents and the webtorrent peers are measured the same way, from outside.
import { readFile } from "node:fs/promises";

export interface ProcStats {
  cpuS: number;
  peakRssMiB: number;
}

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ: 100 on Linux). */
const USER_HZ = 100;

export async function procStats(pid: number): Promise<ProcStats | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
    return {
      cpuS: (utime + stime) / USER_HZ,
      peakRssMiB: hwm ? Number(hwm[1]) / 1024 : Number.NaN,
    };
  } catch {
    return null; // gone already
  }
}

/**
 * What each process spent between two readings (its start-up left out): CPU since `before`,
 * and its peak RSS. Processes missing from either reading are skipped.
 */
export function spentSince(before: (ProcStats | null)[], after: (ProcStats | null)[]): ProcStats[] {
  const out: ProcStats[] = [];
  after.forEach((a, i) => {
    const b = before[i];
    if (a && b) out.push({ cpuS: a.cpuS - b.cpuS, peakRssMiB: a.peakRssMiB });
  });
  return out;
}
