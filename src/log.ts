/** A small leveled logger: one line per event on stderr, `time level component: message`. */
import type { LogLevel } from "./config.ts";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export function createLogger(component: string, level: LogLevel): Logger {
  const min = RANK[level];
  const at = (lvl: LogLevel) => (msg: string) => {
    if (RANK[lvl] < min) return;
    console.error(`${new Date().toISOString()} ${lvl.padEnd(5)} ${component}: ${msg}`);
  };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
