/** Pure text formatting for people: tables, relative times, sizes, colours. */

export type Style = "bold" | "dim" | "red" | "green" | "yellow" | "cyan";
const CODES: Record<Style, [number, number]> = {
  bold: [1, 22],
  dim: [2, 22],
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  cyan: [36, 39],
};

/** Paints text, or returns it unchanged when colour is off. */
export type Paint = (style: Style, text: string) => string;
export const paintWith =
  (enabled: boolean): Paint =>
  (style, text) =>
    enabled && text !== "" ? `\x1b[${CODES[style][0]}m${text}\x1b[${CODES[style][1]}m` : text;

/** Colour only on a terminal, and never when NO_COLOR is set to anything (no-color.org). */
export const colourEnabled = (isTTY: boolean, noColor: string | undefined): boolean =>
  isTTY && noColor === undefined;

// biome-ignore lint/suspicious/noControlCharactersInRegex: matches ANSI escapes on purpose
const ANSI = /\x1b\[[0-9;]*m/g;
export const stripAnsi = (s: string): string => s.replace(ANSI, "");
export const visibleLength = (s: string): number => stripAnsi(s).length;

/** An aligned table: a header row, then rows; cells padded to the widest, two spaces apart. */
export function table(headers: string[], rows: string[][], paint: Paint): string {
  const widths = headers.map((h, i) =>
    Math.max(visibleLength(h), ...rows.map((r) => visibleLength(r[i] ?? ""))),
  );
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + " ".repeat(widths[i]! - visibleLength(c))))
      .join("  ")
      .trimEnd();
  return [paint("bold", line(headers)), ...rows.map(line)].map((l) => `${l}\n`).join("");
}

/** "just now", "42 s ago", "3 min ago", "2 h ago", "5 days ago"; "in 3 min" for the future. */
export function relativeTime(iso: string | null | undefined, now: number): string {
  if (!iso) return "-";
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return iso;
  const s = Math.round((now - at) / 1000);
  const abs = Math.abs(s);
  if (abs < 5) return "just now";
  let text: string;
  if (abs < 60) text = `${abs} s`;
  else if (abs < 3600) text = `${Math.floor(abs / 60)} min`;
  else if (abs < 86_400) text = `${Math.floor(abs / 3600)} h`;
  else {
    const days = Math.floor(abs / 86_400);
    text = `${days} ${days === 1 ? "day" : "days"}`;
  }
  return s >= 0 ? `${text} ago` : `in ${text}`;
}

/** A duration between two ISO times (or until now): "850 ms", "42 s", "3 min 5 s", "2 h 4 min". */
export function duration(fromIso: string | null, toIso: string | null, now: number): string {
  if (!fromIso) return "-";
  const ms = (toIso ? Date.parse(toIso) : now) - Date.parse(fromIso);
  if (Number.isNaN(ms) || ms < 0) return "-";
  if (ms < 1000) return `${ms} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
  const m = Math.floor(s / 60);
  return `${Math.floor(m / 60)} h${m % 60 ? ` ${m % 60} min` : ""}`;
}

/** 1536 → "1.5 KiB"; binary units, as the chunker's sizes are. */
export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

export const shortSha = (sha: string): string => sha.slice(0, 10);

/** A time of day for log lines ("14:03:07"), in the local time zone. */
export function clock(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return [d.getHours(), d.getMinutes(), d.getSeconds()]
    .map((n) => String(n).padStart(2, "0"))
    .join(":");
}

/** Statuses of builds, replication and deployments, coloured by what they mean. */
export function status(s: string, paint: Paint): string {
  if (["SUCCEEDED", "COMPLETE", "healthy"].includes(s)) return paint("green", s);
  if (["FAILED", "ROLLED_BACK", "ABORTED", "failed", "unreachable"].includes(s))
    return paint("red", s);
  if (["RUNNING", "ROLLING", "COPYING", "downloading", "installed"].includes(s))
    return paint("yellow", s);
  return paint("dim", s);
}

/** Cuts text to `max` characters with an ellipsis, for table cells. */
export const clip = (s: string, max: number): string =>
  s.length <= max ? s : `${s.slice(0, Math.max(0, max - 1))}…`;
