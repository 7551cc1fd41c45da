import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface BuildOnceOptions {
  /** A directory path; creating it (mkdir is atomic) is what makes a process the builder. */
  lock: string;
  /** True once the build's result is in place: checked before building and while waiting. */
  done: () => boolean;
  build: () => Promise<void>;
  log: (line: string) => void;
  pollMs?: number;
}

// A lock whose builder never got to write its pid (crashed right after mkdir) is taken over after this.
const PIDLESS_LOCK_STALE_MS = 60_000;
const WAITING_LOG_EVERY_MS = 30_000;

/**
 * Runs `build` unless `done()` holds, with one builder at a time per lock: other callers (other test
 * processes, `npm run tools:build` in another shell) wait and then find the result. The lock holds the
 * builder's pid, so a lock left by a killed builder is taken over instead of waited on. The lock only
 * saves duplicate work: builders must still install atomically, because two can overlap when a lock
 * is wrongly judged stale (e.g. a cache shared between pid namespaces).
 */
export async function buildOnce(options: BuildOnceOptions): Promise<void> {
  const { lock, done, build, log, pollMs = 2_000 } = options;
  let lastWaitingLog = 0;
  for (;;) {
    if (done()) return;
    if (await tryCreate(lock)) break;
    if (await isStale(lock)) {
      await rm(lock, { recursive: true, force: true });
      continue;
    }
    if (Date.now() - lastWaitingLog >= WAITING_LOG_EVERY_MS) {
      log(`[tools] waiting for another process that is building into ${lock.replace(/\.lock$/, "")}`);
      lastWaitingLog = Date.now();
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  try {
    await writeFile(join(lock, "pid"), String(process.pid));
    if (!done()) await build();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

async function tryCreate(lock: string): Promise<boolean> {
  try {
    await mkdir(lock);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
}

async function isStale(lock: string): Promise<boolean> {
  const pid = Number(await readFile(join(lock, "pid"), "utf8").catch(() => ""));
  if (pid > 0) return !isAlive(pid);
  const created = await stat(lock).catch(() => undefined);
  return created === undefined || Date.now() - created.mtimeMs > PIDLESS_LOCK_STALE_MS;
}

/** Whether a process with this pid runs on this machine. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
