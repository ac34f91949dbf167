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
  /** Open for appending at the end, creating it when missing. */
  open(name: string): Promise<LogFile>;
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

class NodeLogFile implements LogFile {
  #size: number;
  constructor(readonly fd: number, size: number) {
    this.#size = size;
  }
  get size(): number {
    return this.#size;
  }
  append(bytes: Uint8Array): Promise<void> {
    try {
      let done = 0;
      while (done < bytes.length) {
        done += fs.writeSync(this.fd, bytes, done, bytes.length - done, this.#size + done);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    this.#size += bytes.length;
    return Promise.resolve();
  }
  sync(): Promise<void> {
    return call<void>((cb) => fs.fdatasync(this.fd, (e) => cb(e, undefined)));
  }
  async truncate(bytes: number): Promise<void> {
    await call<void>((cb) => fs.ftruncate(this.fd, bytes, (e) => cb(e, undefined)));
    this.#size = bytes;
  }
  close(): Promise<void> {
    return call<void>((cb) => fs.close(this.fd, (e) => cb(e, undefined)));
  }
}

export function nodeDisk(dir: string): Disk {
  const at = (name: string) => join(dir, name);
  return {
    list: () => call<string[]>((cb) => fs.readdir(dir, cb)),
    read: async (name) => new Uint8Array(await call<Buffer>((cb) => fs.readFile(at(name), cb))),
    open: async (name) => {
      // Not O_APPEND: writes go to explicit offsets (see append).
      const fd = await call<number>((cb) =>
        fs.open(at(name), fs.constants.O_RDWR | fs.constants.O_CREAT, cb)
      );
      const st = await call<fs.Stats>((cb) => fs.fstat(fd, cb));
      return new NodeLogFile(fd, st.size);
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
