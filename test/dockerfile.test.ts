// The image recipe without Docker: its stages say what the issue asks, its entry point is the
// package's bin, and the files its runtime stage copies are enough to run the smoke check, after
// the same `tsc -p tsconfig.json` its build stage runs (into a scratch directory, so a concurrent
// `npm run build` is left alone).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cp, mkdir, readFile, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import type { V1Deployment } from "@kubernetes/client-node";
import { copyOf, execForm, parseDockerfile, type Stage } from "./support/dockerfile.js";
import { loadManifest } from "./support/manifests.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

function run(command: string, args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const runs = (stage: Stage) => stage.instructions.filter((i) => i.keyword === "RUN").map((i) => i.args);
const workdir = (stage: Stage) => stage.instructions.filter((i) => i.keyword === "WORKDIR").at(-1)?.args ?? "/";

describe("Dockerfile", () => {
  let stages: Stage[];
  let runtime: Stage;
  let bin: string;

  before(async () => {
    stages = parseDockerfile(await readFile(join(ROOT, "Dockerfile"), "utf8"));
    runtime = stages.at(-1)!;
    const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as { bin: Record<string, string> };
    bin = pkg.bin["azure-msi-operator"]!;
  });

  test("multi-stage on Node 22: build with npm ci + npm run build, runtime with production dependencies only", () => {
    assert.ok(stages.length >= 2, "multi-stage");
    for (const stage of stages) assert.match(stage.image, /^node:22(-|$)/, `${stage.name ?? "final"} stage on Node 22 LTS`);
    const build = stages.find((stage) => runs(stage).includes("npm run build"));
    assert.ok(build?.name, "a named build stage runs npm run build");
    assert.ok(runs(build).includes("npm ci"), "the build stage installs with npm ci");
    const copies = runtime.instructions.filter((i) => i.keyword === "COPY").map((i) => copyOf(i.args));
    const modules = copies.find((copy) => copy.sources.some((source) => source.endsWith("node_modules")));
    const moduleStage = stages.find((stage) => stage.name === modules?.from);
    assert.ok(moduleStage && runs(moduleStage).some((args) => /npm ci\b.*--omit=dev/.test(args)), "node_modules come from an npm ci --omit=dev stage");
    assert.ok(moduleStage !== build, "not the build stage's node_modules, which hold the dev tools");
    // Only the compiled operator, its dependencies and package.json (which makes dist/ ES modules).
    const shipped = copies.flatMap((copy) =>
      copy.sources.map((source) => posix.relative(copy.from ? workdir(stages.find((s) => s.name === copy.from)!) : ".", source)),
    );
    assert.deepEqual(
      shipped.filter((path) => !/^(dist\/|node_modules$|package\.json$)/.test(path)),
      [],
      "nothing else is copied into the runtime image",
    );
  });

  test("runs as a numeric non-root user, the one the Deployment declares", async () => {
    const user = runtime.instructions.filter((i) => i.keyword === "USER").at(-1)?.args;
    assert.match(user ?? "", /^\d+(:\d+)?$/, "numeric USER in the runtime stage");
    const [uid, gid] = user!.split(":").map(Number);
    assert.notEqual(uid, 0);
    const deployment = (await loadManifest("deployment.yaml")).find((object) => object.kind === "Deployment") as V1Deployment;
    const pod = deployment.spec?.template.spec?.securityContext;
    assert.equal(pod?.runAsUser, uid, "runAsUser matches USER");
    if (gid !== undefined) assert.equal(pod?.runAsGroup, gid, "runAsGroup matches USER");
  });

  test("ENTRYPOINT is the package's bin, and the smoke check runs exactly that with --help", () => {
    const entrypoint = execForm(runtime.instructions.filter((i) => i.keyword === "ENTRYPOINT").at(-1)?.args ?? "");
    assert.deepEqual(entrypoint, ["node", bin]);
    assert.equal(bin, "dist/src/main.js");
    const userAt = runtime.instructions.findIndex((i) => i.keyword === "USER");
    const smokeAt = runtime.instructions.findIndex((i) => i.keyword === "RUN" && i.args === `node ${bin} --help`);
    assert.ok(smokeAt >= 0, `RUN node ${bin} --help in the runtime stage`);
    assert.ok(smokeAt > userAt, "the smoke check runs as the runtime user");
  });

  describe("the runtime stage's files, built as the build stage builds them", () => {
    const scratch = join(ROOT, ".cache", `dockerfile-test-${randomBytes(4).toString("hex")}`);
    after(() => rm(scratch, { recursive: true, force: true }));

    test("the entry path exists and `node dist/src/main.js --help` passes with only the copied files", { timeout: 240_000 }, async () => {
      const out = join(scratch, "dist");
      const tsc = await run(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json", "--outDir", out], ROOT);
      assert.equal(tsc.code, 0, `npm run build's tsc fails, so would the image build:\n${tsc.stdout.slice(-3000)}`);
      // The runtime stage's COPY lines, replayed into an /app of our own.
      const app = join(scratch, "app");
      await mkdir(app, { recursive: true });
      const build = stages.find((stage) => runs(stage).includes("npm run build"))!;
      for (const instruction of runtime.instructions.filter((i) => i.keyword === "COPY")) {
        const copy = copyOf(instruction.args);
        for (const source of copy.sources) {
          // node_modules: Node finds the repository's own by walking up (a superset: dev dependencies too).
          if (source.endsWith("node_modules")) continue;
          const relative = copy.from === build.name ? posix.relative(workdir(build), source) : source;
          const from = copy.from === build.name ? join(out, posix.relative("dist", relative)) : join(ROOT, relative);
          const to = join(app, copy.dest.endsWith("/") ? posix.join(copy.dest, posix.basename(source)) : copy.dest);
          assert.ok(existsSync(from), `COPY source ${source} exists after the build (${from})`);
          await cp(from, to, { recursive: true });
        }
      }
      const entrypoint = execForm(runtime.instructions.filter((i) => i.keyword === "ENTRYPOINT").at(-1)!.args)!;
      assert.ok(existsSync(join(app, entrypoint[1]!)), `${entrypoint[1]} exists in the runtime files`);
      const smoke = runs(runtime)
        .find((args) => args.startsWith("node "))!
        .split(" ");
      const result = await run(process.execPath, smoke.slice(1), app);
      assert.equal(result.code, 0, result.stderr);
      for (const flag of ["--webhook.bind", "--lease.enable", "--sync.watch"]) assert.ok(result.stdout.includes(flag), `--help lists ${flag}`);
    });
  });
});
