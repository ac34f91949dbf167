/**
 * One suspicion timer (Lifeguard's dynamic suspicion): it starts at the maximum timeout and
 * shrinks toward the minimum as other members independently suspect the same member at the
 * same incarnation. The accuser that started it never counts as a confirmation, so our own
 * suspicion gossiped back to us does not speed anything up. Time is passed in.
 */
import { suspicionTimeoutMs } from "./swim-config.ts";

export class Suspicion {
  readonly #confirmedBy = new Set<string>();
  #startMs: number;

  constructor(
    /** The suspect's incarnation this suspicion is about. */
    readonly incarnation: number,
    startMs: number,
    readonly minMs: number,
    readonly maxMs: number,
    /** Confirmations that drive the timeout to its minimum. */
    readonly k: number,
    /** Who raised it ("" if unknown); re-gossiped with the suspicion, never a confirmation. */
    readonly accuser: string,
  ) {
    this.#startMs = startMs;
    this.#confirmedBy.add(accuser);
  }

  /** Independent confirmations counted so far (at most k). */
  get confirmations(): number {
    return this.#confirmedBy.size - 1;
  }

  /** Count `from` once; false when it is a repeat or k is already reached. */
  confirm(from: string): boolean {
    if (this.confirmations >= this.k || this.#confirmedBy.has(from)) return false;
    this.#confirmedBy.add(from);
    return true;
  }

  /** When the suspect is to be declared DOWN unless it refutes first. */
  deadlineMs(): number {
    return this.#startMs + suspicionTimeoutMs(this.minMs, this.maxMs, this.confirmations, this.k);
  }

  /** Push the timer back by `ms`: time we spent paused does not count against the suspect. */
  postpone(ms: number): void {
    this.#startMs += ms;
  }
}
