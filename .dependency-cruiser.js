// The layering ARCHITECTURE.md draws ("Layering, enforced"), checked by `npm run lint`: a new
// back-edge fails the lint instead of waiting for a reviewer to notice it.

// Decisions without I/O. src/config/cli.ts is configuration's one impure file (it reads the
// service-account namespace and exits), so it is not among them.
const PURE = [
  "^src/template/",
  "^src/config/(?!cli\\.ts$)",
  "^src/retry/",
  "^src/syncer/(desired|diff|prune|preview)\\.ts$",
  "^src/workload/(plan|names|preview|migrate)\\.ts$",
  "^src/webhook/decide-[^/]+\\.ts$",
];

// What does I/O: sockets, HTTP, files, processes, and the clients and servers built on them.
const IO_MODULES = [
  "^(node:)?(net|http|https|http2|tls|dgram|dns|fs|fs/promises|child_process|cluster|worker_threads)$",
  // npm packages are matched by where they resolve to.
  "(^|/)node_modules/@azure/",
  "(^|/)node_modules/@kubernetes/client-node/",
  "(^|/)node_modules/fastify/",
];

/** @type {import('dependency-cruiser').IConfiguration} */
export default {
  forbidden: [
    {
      name: "pure-imports-no-io",
      comment:
        "Pure modules (templates, configuration, retry arithmetic, desired state, diffs, plans, admission decisions) import no I/O adapter; types alone are fine.",
      severity: "error",
      from: { path: PURE, pathNot: "\\.test\\.ts$" },
      to: {
        path: IO_MODULES,
        dependencyTypesNot: ["type-only"],
        // isIP parses an address: pure, though node:net is where Node keeps it.
        pathNot: "^(node:)?net$",
      },
    },
    {
      name: "pure-net-only-isip",
      comment: "Of node:net a pure module may use isIP alone (src/config/values.ts); anything else there is a socket.",
      severity: "error",
      from: { path: PURE, pathNot: ["\\.test\\.ts$", "^src/config/values\\.ts$"] },
      to: { path: "^(node:)?net$", dependencyTypesNot: ["type-only"] },
    },
    {
      name: "webhook-not-controllers",
      comment: "Admission decides from caches it is handed; it never reaches into the syncer or the workload controllers.",
      severity: "error",
      from: { path: "^src/webhook/" },
      to: { path: ["^src/syncer/", "^src/workload/fic-syncer\\.ts$"] },
    },
    {
      name: "adapters-not-controllers",
      comment: "The Kubernetes and Azure adapters are used by the controllers, never the other way round.",
      severity: "error",
      from: { path: "^src/(kube|azure)/" },
      to: { path: ["^src/syncer/", "^src/workload/", "^src/duties/", "^src/app\\.ts$"] },
    },
    {
      name: "composition-root-imported-by-entry-only",
      comment: "src/app.ts and src/main.ts compose the process: only the entry point and src/operator.ts build them (tests and tools may too).",
      severity: "error",
      from: { path: "^src/", pathNot: ["^src/(main|operator)\\.ts$", "\\.test\\.ts$"] },
      to: { path: "^src/(app|main)\\.ts$", dependencyTypesNot: ["type-only"] },
    },
    {
      name: "no-circular",
      comment: "No module depends on itself through others.",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    {
      // Folders too: src/syncer drives the workload (FIC) controller, so src/workload must not
      // reach back into src/syncer. The one work queue (src/syncer/queue.ts, a leaf that imports
      // only src/retry) is for both controllers; the types both share live in src/model.
      name: "no-syncer-workload-cycle",
      comment: "src/workload imports nothing from src/syncer but the work queue: src/syncer imports src/workload, so anything else is a folder cycle.",
      severity: "error",
      from: { path: "^src/workload/", pathNot: "\\.test\\.ts$" },
      to: { path: "^src/syncer/", pathNot: "^src/syncer/queue\\.ts$" },
    },
    {
      name: "bottom-layer",
      comment: "src/retry and src/template are the bottom layer: they import nothing else of ours.",
      severity: "error",
      from: { path: "^src/(retry|template)/", pathNot: "\\.test\\.ts$" },
      to: { path: "^(src|certs)/", pathNot: "^src/(retry|template)/" },
    },
    {
      name: "lifecycle-knows-only-retry",
      comment: "The duty model (src/lifecycle) knows only src/retry; duties come to it from above.",
      severity: "error",
      from: { path: "^src/lifecycle/", pathNot: "\\.test\\.ts$" },
      to: { path: "^(src|certs)/", pathNot: "^src/(lifecycle|retry)/" },
    },
    {
      name: "domain-not-lifecycle",
      comment: "Domain code takes canWrite/signal (a Term's) in its deps: it never imports the duties, the lifecycle, the commands or the composition root.",
      severity: "error",
      from: {
        path: ["^src/(config|kube|azure|metrics|events|leader|webhook|syncer|workload|model|ops)/", "^src/log\\.ts$", "^certs/"],
        pathNot: "\\.test\\.ts$",
      },
      to: { path: ["^src/(duties|lifecycle|commands)/", "^src/(app|operator|main)\\.ts$"], dependencyTypesNot: ["type-only"] },
    },
    {
      name: "duties-not-composition-root",
      comment: "The composition root imports the duties and commands, never the reverse.",
      severity: "error",
      from: { path: "^src/(duties|commands)/", pathNot: "\\.test\\.ts$" },
      to: { path: "^src/(app|operator|main)\\.ts$" },
    },
    {
      name: "work-queue-is-a-leaf",
      comment: "src/syncer/queue.ts, shared by the syncer and the workload controller, imports only src/retry.",
      severity: "error",
      from: { path: "^src/syncer/queue\\.ts$" },
      to: { pathNot: "^src/retry/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^dist/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
