/** The RESP front's one error: its message is the error line (`ERR ...`, `NOAUTH ...`). */
import { DkvError } from "../http/errors.ts";

export class RespError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RespError";
  }
}

/** The error line for anything a command threw; undefined for a bug (logged by the caller). */
export function errorLine(e: unknown): string | undefined {
  if (e instanceof RespError) return e.message;
  if (e instanceof DkvError) {
    // Redis's words where Redis has a case; else ERR and our message.
    if (e.code === "store_full") return `OOM ${e.message}`;
    if (e.code === "unavailable") return `TRYAGAIN ${e.message}`;
    return `ERR ${e.message}`;
  }
  return undefined;
}

export const SYNTAX = "ERR syntax error";
export const NOT_INTEGER = "ERR value is not an integer or out of range";

export function arity(cmd: string): RespError {
  return new RespError(`ERR wrong number of arguments for '${cmd.toLowerCase()}' command`);
}
