/**
 * Preloaded by `bun test` (bunfig.toml): rebuilds ./dkv when it is missing or a file under src/
 * (or package.json, or the lockfile) is newer, so a plain `bun test` never runs a stale binary.
 * `npm test` builds first anyway (pretest); then this finds nothing to do. If the build fails,
 * the run stops here with the build's output.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { DKV, ROOT } from "./cluster.ts";

function newestSourceMs(): { path: string; mtimeMs: number } {
  const files = [
    "package.json",
    "package-lock.json",
    ...readdirSync(join(ROOT, "src"), { recursive: true }).map((f) => join("src", String(f))),
  ];
  let newest = { path: "", mtimeMs: 0 };
  for (const f of files) {
    const full = join(ROOT, f);
    if (!existsSync(full)) continue;
    const st = statSync(full);
    if (st.isFile() && st.mtimeMs > newest.mtimeMs) newest = { path: f, mtimeMs: st.mtimeMs };
  }
  return newest;
}

const newest = newestSourceMs();
const builtMs = existsSync(DKV) ? statSync(DKV).mtimeMs : 0;
if (newest.mtimeMs > builtMs) {
  const why = builtMs === 0 ? "./dkv is missing" : `${newest.path} is newer than ./dkv`;
  console.error(`[tests] ${why}: running npm run build`);
  const r = Bun.spawnSync(["npm", "run", "--silent", "build"], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  if (r.exitCode !== 0) {
    throw new Error(
      `[tests] ${why}, and npm run build failed (exit ${r.exitCode}):\n` +
        r.stdout.toString() + r.stderr.toString(),
    );
  }
}
