/**
 * A small leveled logger: one line per event on stderr.
 *
 * - `text` (default): `time level role member: message k=v k=v`, for people.
 * - `json` (--log-format json): one object per line, `{"time","level","role","member","msg",
 *   ...fields}`, for log shippers. Fields never overwrite those five.
 *
 * Fields are optional on every call: a plain message is still a complete line.
 */
import type { LogFormat, LogLevel } from "./config.ts";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Structured details of a line: flat, JSON-safe values. */
export type LogFields = Readonly<Record<string, string | number | boolean | null>>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export interface LineParts {
  readonly timeMs: number;
  readonly level: LogLevel;
  readonly role: string;
  readonly member: string;
  readonly msg: string;
  readonly fields?: LogFields;
}

const RESERVED = new Set(["time", "level", "role", "member", "msg"]);

/** A text field value: bare when it has no space, quote or `=`, else JSON-quoted. */
function textValue(v: string | number | boolean | null): string {
  if (typeof v !== "string") return String(v);
  return v.length > 0 && !/[\s"=]/.test(v) ? v : JSON.stringify(v);
}

/** One log line (no newline), pure: the shell adds the clock and the stream. */
export function formatLine(format: LogFormat, p: LineParts): string {
  const time = new Date(p.timeMs).toISOString();
  if (format === "json") {
    const out: Record<string, unknown> = {
      time,
      level: p.level,
      role: p.role,
      member: p.member,
      msg: p.msg,
    };
    for (const [k, v] of Object.entries(p.fields ?? {})) if (!RESERVED.has(k)) out[k] = v;
    return JSON.stringify(out);
  }
  let line = `${time} ${p.level.padEnd(5)} ${p.role} ${p.member}: ${p.msg}`;
  for (const [k, v] of Object.entries(p.fields ?? {})) line += ` ${k}=${textValue(v)}`;
  return line;
}

export interface LoggerOptions {
  readonly role: string;
  readonly member: string;
  readonly level: LogLevel;
  readonly format?: LogFormat;
  /** Where lines go (stderr). */
  readonly write?: (line: string) => void;
  readonly now?: () => number;
}

export function createLogger(opts: LoggerOptions): Logger {
  const min = RANK[opts.level];
  const format = opts.format ?? "text";
  const write = opts.write ?? ((line: string) => console.error(line));
  const now = opts.now ?? Date.now;
  const at = (level: LogLevel) => (msg: string, fields?: LogFields) => {
    if (RANK[level] < min) return;
    write(formatLine(format, {
      timeMs: now(),
      level,
      role: opts.role,
      member: opts.member,
      msg,
      ...(fields === undefined ? {} : { fields }),
    }));
  };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
