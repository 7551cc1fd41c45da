import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildOnce } from "./build-lock.js";

describe("buildOnce", () => {
  let scratch: string;
  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), "build-lock-test-"));
  });
  after(async () => rm(scratch, { recursive: true, force: true }));

  test("concurrent callers build once; the others wait for that build and find its result", async () => {
    const result = join(scratch, "concurrent.out");
    let builds = 0;
    const options = {
      lock: join(scratch, "concurrent.lock"),
      done: () => existsSync(result),
      build: async () => {
        builds += 1;
        await new Promise((resolve) => setTimeout(resolve, 200));
        await writeFile(result, "built");
      },
      log: () => {},
      pollMs: 20,
    };
    await Promise.all([buildOnce(options), buildOnce(options), buildOnce(options)]);
    assert.equal(builds, 1);
    assert.equal(existsSync(options.lock), false, "the lock is released");
  });

  test("a lock left by a builder that died is taken over instead of waited on", async () => {
    const lock = join(scratch, "dead.lock");
    const deadPid = spawnSync("true").pid;
    await mkdir(lock);
    await writeFile(join(lock, "pid"), String(deadPid));
    let built = false;
    await buildOnce({ lock, done: () => built, build: async () => void (built = true), log: () => {}, pollMs: 20 });
    assert.equal(built, true);
  });

  test("a failed build releases the lock, so the next caller builds", async () => {
    const lock = join(scratch, "failing.lock");
    await assert.rejects(buildOnce({ lock, done: () => false, build: () => Promise.reject(new Error("go exited with 1")), log: () => {} }), /go exited with 1/);
    assert.equal(existsSync(lock), false);
  });
});
