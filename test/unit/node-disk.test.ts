/**
 * The real disk's log file (node:fs): appendDurable (an O_DSYNC write where the platform has one)
 * writes the same bytes at the same places as append, mixed in any order with append, sync and
 * truncate. Whether the bytes survive a power cut is the kernel's promise for O_DSYNC; this checks
 * what the file holds.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nodeDisk } from "../../src/platform/disk.ts";

const dir = mkdtempSync(join(tmpdir(), "dkv-node-disk-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);

test("appendDurable, append, sync and truncate in any order: the file holds what was appended", async () => {
  const disk = nodeDisk(dir);
  const f = await disk.open("log-1");
  expect(f.appendDurable).toBeDefined();
  const want: number[] = [];
  const add = (b: Uint8Array) => want.push(...b);
  await f.append(bytes(10, 1));
  add(bytes(10, 1));
  await f.appendDurable!(bytes(5000, 2));
  add(bytes(5000, 2));
  await f.appendDurable!(bytes(3, 3));
  add(bytes(3, 3));
  await f.append(bytes(7, 4));
  add(bytes(7, 4));
  await f.sync();
  await f.appendDurable!(bytes(1, 5));
  add(bytes(1, 5));
  expect(f.size).toBe(want.length);
  expect([...readFileSync(join(dir, "log-1"))]).toEqual(want);
  // Cut back (a failed append's cleanup), then durable appends go on from the cut.
  await f.truncate(12);
  want.length = 12;
  await f.appendDurable!(bytes(4, 6));
  add(bytes(4, 6));
  expect(f.size).toBe(16);
  expect([...readFileSync(join(dir, "log-1"))]).toEqual(want);
  await f.close();
  // Reopened: appends go on at the end.
  const g = await disk.open("log-1");
  expect(g.size).toBe(16);
  await g.appendDurable!(bytes(2, 7));
  add(bytes(2, 7));
  expect([...readFileSync(join(dir, "log-1"))]).toEqual(want);
  await g.close();
});
