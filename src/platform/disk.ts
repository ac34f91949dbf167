/**
 * The disk under --data-dir, behind one small interface (the simulator has an in-memory twin
 * that loses what was not synced when it "crashes"). This one uses node:fs, which Bun and Deno
 * both provide. A log append is one `pwrite` on the calling thread: it only copies the bytes
 * into the OS's page cache, which costs less than handing it to the runtime's thread pool and
 * being woken when it is done. Everything that waits for the device (fdatasync, whole files)
 * is asynchronous (the thread pool), so a sync does not stop the member from serving meanwhile.
 */
import * as fs from "node:fs";
import { join } from "node:path";

/** A file written at its end. */
export interface LogFile {
  /** Bytes in the file (what was appended, whether synced or not). */
  readonly size: number;
  append(bytes: Uint8Array): Promise<void>;
  /** Make everything appended so far durable (fdatasync). */
  sync(): Promise<void>;
  /** Cut the file to `bytes` (after a failed append: back to the last whole entry). */
  truncate(bytes: number): Promise<void>;
  close(): Promise<void>;
}

export interface Disk {
  /** Names of the files in the data dir. */
  list(): Promise<string[]>;
  read(name: string): Promise<Uint8Array>;
  /**
   * Open for appending at the end, creating it when missing. `preallocate`: keep zeros written
   * ahead of the end, that many bytes at a time, so a sync has only the data to flush (see
   * PREALLOCATE_BYTES).
   */
  open(name: string, opts?: { preallocate?: number }): Promise<LogFile>;
  /** Write a whole small file durably: a temporary file, synced, renamed over `name`. */
  writeAtomic(name: string, bytes: Uint8Array): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  remove(name: string): Promise<void>;
  truncate(name: string, bytes: number): Promise<void>;
  /** Make renames, creations and removals in the dir durable. */
  syncDir(): Promise<void>;
}

const call = <T>(fn: (cb: (e: NodeJS.ErrnoException | null, v: T) => void) => void) =>
  new Promise<T>((resolve, reject) => fn((e, v) => (e ? reject(e) : resolve(v))));

/**
 * A log opened with `preallocate: C` keeps zeros written (and synced) ahead of its end, C bytes
 * at a time, as etcd's WAL does: an append then overwrites blocks the file already has, so its
 * fdatasync flushes those blocks and nothing else. An append that grows the file also makes the
 * file system commit the new length and block map to its journal, which on this kind of disk
 * doubles the time and CPU of every sync (docs/PERFORMANCE.md). Recovery reads the zeros as the
 * end of the log (src/core/wal-format.ts); close() cuts them off. The data dir asks for at most
 * PREALLOCATE_BYTES.
 */
export const PREALLOCATE_BYTES = 4 << 20;
/** Preallocation takes no part of the last 16 chunks of free space (a nearly full disk). */
const PREALLOCATE_SPARE_CHUNKS = 16;
/** Written from, never into: a megabyte of zeros shared by every log. */
let zeros: Uint8Array | undefined;

class NodeLogFile implements LogFile {
  /** The log's bytes. */
  #size: number;
  /** The file's length: the log's bytes and the zeros ahead of them. */
  #length: number;
  /** Zeros being written from #length on (in the thread pool); appends stay before them. */
  #extending: Promise<void> | undefined;
  /** No preallocation before the log reaches this size (after the disk had no room for it). */
  #preallocateAt: number;
  constructor(
    readonly fd: number,
    size: number,
    readonly dir: string,
    /** Bytes of zeros written ahead at a time; 0: none. */
    readonly chunk: number,
  ) {
    this.#size = this.#length = size;
    this.#preallocateAt = chunk > 0 ? 0 : Infinity;
  }
  get size(): number {
    return this.#size;
  }
  append(bytes: Uint8Array): Promise<void> {
    if (this.#extending !== undefined && this.#size + bytes.length > this.#length) {
      // Faster than the zeros (a burst): after them, so the zeros do not land on the entries.
      return this.#extending.then(() => this.append(bytes));
    }
    try {
      let done = 0;
      while (done < bytes.length) {
        done += fs.writeSync(this.fd, bytes, done, bytes.length - done, this.#size + done);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    this.#size += bytes.length;
    if (this.#size > this.#length) this.#length = this.#size;
    if (
      this.#extending === undefined && this.#size >= this.#preallocateAt &&
      this.#length - this.#size < this.chunk / 2
    ) {
      this.#extending = this.#extend().finally(() => (this.#extending = undefined));
    }
    return Promise.resolve();
  }
  async #extend(): Promise<void> {
    const from = this.#length;
    try {
      const st = await call<fs.StatsFs>((cb) => fs.statfs(this.dir, cb));
      if (st.bavail * st.bsize < PREALLOCATE_SPARE_CHUNKS * this.chunk) {
        this.#preallocateAt = this.#size + this.chunk;
        return;
      }
      zeros ??= new Uint8Array(1 << 20);
      for (let done = 0; done < this.chunk;) {
        const n = Math.min(zeros.length, this.chunk - done);
        done += await call<number>((cb) => fs.write(this.fd, zeros!, 0, n, from + done, cb));
      }
      await call<void>((cb) => fs.fdatasync(this.fd, (e) => cb(e, undefined)));
      this.#length = from + this.chunk;
    } catch {
      // No room after all, or the file system refuses: the log goes on growing as it writes,
      // and tries again a chunk later. The part written is cut off again.
      this.#preallocateAt = this.#size + this.chunk;
      await call<void>((cb) => fs.ftruncate(this.fd, from, (e) => cb(e, undefined)))
        .catch(() => {});
    }
  }
  sync(): Promise<void> {
    return call<void>((cb) => fs.fdatasync(this.fd, (e) => cb(e, undefined)));
  }
  async truncate(bytes: number): Promise<void> {
    await this.#extending;
    await call<void>((cb) => fs.ftruncate(this.fd, bytes, (e) => cb(e, undefined)));
    this.#size = this.#length = bytes;
  }
  async close(): Promise<void> {
    await this.#extending;
    if (this.#length > this.#size) {
      await call<void>((cb) => fs.ftruncate(this.fd, this.#size, (e) => cb(e, undefined)))
        .catch(() => {});
    }
    await call<void>((cb) => fs.close(this.fd, (e) => cb(e, undefined)));
  }
}

export function nodeDisk(dir: string): Disk {
  const at = (name: string) => join(dir, name);
  return {
    list: () => call<string[]>((cb) => fs.readdir(dir, cb)),
    read: async (name) => new Uint8Array(await call<Buffer>((cb) => fs.readFile(at(name), cb))),
    open: async (name, opts) => {
      // Not O_APPEND: writes go to explicit offsets (see append).
      const fd = await call<number>((cb) =>
        fs.open(at(name), fs.constants.O_RDWR | fs.constants.O_CREAT, cb)
      );
      const st = await call<fs.Stats>((cb) => fs.fstat(fd, cb));
      return new NodeLogFile(fd, st.size, dir, opts?.preallocate ?? 0);
    },
    writeAtomic: async (name, bytes) => {
      const tmp = at(`${name}.tmp`);
      const fd = await call<number>((cb) => fs.open(tmp, "w", cb));
      try {
        await call<number>((cb) => fs.write(fd, bytes, 0, bytes.length, 0, cb));
        await call<void>((cb) => fs.fsync(fd, (e) => cb(e, undefined)));
      } finally {
        await call<void>((cb) => fs.close(fd, (e) => cb(e, undefined)));
      }
      await call<void>((cb) => fs.rename(tmp, at(name), (e) => cb(e, undefined)));
      await syncDir(dir);
    },
    rename: (from, to) => call<void>((cb) => fs.rename(at(from), at(to), (e) => cb(e, undefined))),
    remove: (name) => call<void>((cb) => fs.unlink(at(name), (e) => cb(e, undefined))),
    truncate: (name, bytes) =>
      call<void>((cb) => fs.truncate(at(name), bytes, (e) => cb(e, undefined))),
    syncDir: () => syncDir(dir),
  };
}

async function syncDir(dir: string): Promise<void> {
  const fd = await call<number>((cb) => fs.open(dir, "r", cb));
  try {
    await call<void>((cb) => fs.fsync(fd, (e) => cb(e, undefined)));
  } catch {
    // Some file systems (and runtimes) cannot fsync a directory; the rename is then as durable
    // as the file system makes it.
  } finally {
    await call<void>((cb) => fs.close(fd, (e) => cb(e, undefined)));
  }
}

/**
 * Take the data dir for this process: create it if needed, and a LOCK file holding our pid.
 * Refuses (throws with the reason) when the LOCK names another live process. A LOCK left by a
 * process that died (kill -9, power cut) is taken over. Returns a function that releases it.
 */
export function lockDataDir(dir: string): () => void {
  fs.mkdirSync(dir, { recursive: true });
  const lock = join(dir, "LOCK");
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(lock, "wx");
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      return () => {
        try {
          if (fs.readFileSync(lock, "utf8").trim() === String(process.pid)) fs.unlinkSync(lock);
        } catch {
          // Already gone.
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const pid = Number(fs.readFileSync(lock, "utf8").trim());
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      throw new Error(`in use by process ${pid} (its LOCK file); stop that process first`);
    }
    fs.unlinkSync(lock); // stale: its process is gone
  }
  throw new Error("could not take its LOCK file");
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  // A killed process not yet reaped by its parent (a zombie) still answers signal 0 on Linux.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true; // not Linux: trust the signal
  }
}
