/**
 * The in-memory twin of the disk (src/platform/disk.ts) for the simulation and in-process tests.
 * Each file keeps what was appended and, apart, what was synced. `crash()` is a power cut: every
 * file goes back to what was synced, plus (seeded) a random part of the unsynced tail, cut at
 * any byte — a torn write. A process crash (`kill -9`) loses nothing the OS was given, so it
 * needs no call here. Directory changes (create, rename, remove) are taken as durable at once.
 * `full` makes appends fail as a full disk does (ENOSPC), after writing part of the bytes.
 */
import type { Disk, LogFile } from "../../src/platform/disk.ts";

interface SimFile {
  bytes: Uint8Array;
  size: number;
  synced: number;
}

function enospc(): Error {
  return Object.assign(new Error("no space left on device"), { code: "ENOSPC" });
}

export class SimDisk implements Disk {
  readonly files = new Map<string, SimFile>();
  /** Appends fail (ENOSPC) while set. */
  full = false;
  syncs = 0;
  /**
   * How long a sync takes (the simulation waits this on the member's own clock, so a sync is
   * still running when a power cut comes); none by default.
   */
  syncDelay: (() => Promise<void>) | undefined;
  /** Raised by each crash: handles opened before it fail (the process that held them is gone). */
  #epoch = 0;

  constructor(private readonly random: () => number = Math.random) {}

  list(): Promise<string[]> {
    return Promise.resolve([...this.files.keys()]);
  }

  read(name: string): Promise<Uint8Array> {
    const f = this.files.get(name);
    if (f === undefined) return Promise.reject(new Error(`${name}: no such file`));
    return Promise.resolve(f.bytes.slice(0, f.size));
  }

  open(name: string): Promise<LogFile> {
    let f = this.files.get(name);
    if (f === undefined) {
      f = { bytes: new Uint8Array(256), size: 0, synced: 0 };
      this.files.set(name, f);
    }
    const file = f;
    const epoch = this.#epoch;
    let closed = false;
    const live = () => {
      if (closed || this.files.get(name) !== file || this.#epoch !== epoch) {
        throw new Error(`${name}: closed, removed, or its process crashed`);
      }
    };
    return Promise.resolve({
      get size() {
        return file.size;
      },
      append: (b: Uint8Array): Promise<void> => {
        live();
        if (this.full) {
          // A full disk takes part of the write, then refuses.
          const part = Math.floor(this.random() * b.length);
          this.#write(file, b.subarray(0, part));
          return Promise.reject(enospc());
        }
        this.#write(file, b);
        return Promise.resolve();
      },
      sync: async (): Promise<void> => {
        live();
        const upTo = file.size;
        if (this.syncDelay !== undefined) await this.syncDelay();
        live();
        file.synced = Math.max(file.synced, Math.min(upTo, file.size));
        this.syncs++;
      },
      truncate(n: number): Promise<void> {
        live();
        file.size = Math.min(file.size, n);
        file.synced = Math.min(file.synced, n);
        return Promise.resolve();
      },
      close(): Promise<void> {
        closed = true;
        return Promise.resolve();
      },
    });
  }

  #write(f: SimFile, b: Uint8Array): void {
    if (f.size + b.length > f.bytes.length) {
      let cap = f.bytes.length * 2;
      while (cap < f.size + b.length) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(f.bytes.subarray(0, f.size));
      f.bytes = next;
    }
    f.bytes.set(b, f.size);
    f.size += b.length;
  }

  writeAtomic(name: string, bytes: Uint8Array): Promise<void> {
    if (this.full) return Promise.reject(enospc());
    this.files.set(name, { bytes: bytes.slice(), size: bytes.length, synced: bytes.length });
    return Promise.resolve();
  }

  rename(from: string, to: string): Promise<void> {
    const f = this.files.get(from);
    if (f === undefined) return Promise.reject(new Error(`${from}: no such file`));
    this.files.delete(from);
    this.files.set(to, f);
    return Promise.resolve();
  }

  remove(name: string): Promise<void> {
    this.files.delete(name);
    return Promise.resolve();
  }

  truncate(name: string, n: number): Promise<void> {
    const f = this.files.get(name);
    if (f !== undefined) {
      f.size = Math.min(f.size, n);
      f.synced = Math.min(f.synced, n);
    }
    return Promise.resolve();
  }

  syncDir(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * A power cut: each file keeps what was synced and, half the time, a random part of the rest
   * (a torn write); otherwise nothing of it.
   */
  crash(): void {
    this.#epoch++;
    for (const f of this.files.values()) {
      const unsynced = f.size - f.synced;
      const kept = unsynced <= 0 || this.random() < 0.5
        ? 0
        : Math.floor(this.random() * (unsynced + 1));
      f.size = f.synced + kept;
      f.synced = f.size;
    }
  }

  /** Bytes in all files. */
  bytes(): number {
    let n = 0;
    for (const f of this.files.values()) n += f.size;
    return n;
  }
}
