// Lint: typescript-eslint's type-checked rules, with the ones this codebase leans on made errors:
// no floating promises (a `void` promise says why in a comment), no `any`, no sprawling functions.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", ".cache/"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      "@typescript-eslint/no-floating-promises": [
        "error",
        { ignoreVoid: true, allowForKnownSafeCalls: [{ from: "package", package: "node:test", name: ["test", "describe", "suite", "it"] }] },
      ],
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: { arguments: false } }],
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "max-lines-per-function": ["error", { max: 70, skipBlankLines: true, skipComments: true }],
      complexity: ["error", 20],
      // Duties and adapters implement promise-returning interfaces without always awaiting inside.
      "@typescript-eslint/require-await": "off",
    },
  },
  {
    // Tests and benchmarks are scenarios read top to bottom: long by nature.
    files: ["**/*.test.ts", "test/**", "bench/**", "demo/**"],
    rules: { "max-lines-per-function": "off", complexity: "off" },
  },
  // Layers (ARCHITECTURE.md, "Layers"): each imports only the ones below it, so no back-edge creeps in.
  layer(["src/retry/**", "src/template/**"], ["../**"], "retry and template are the bottom layer: they import nothing else of ours"),
  layer(["src/lifecycle/**"], ["../*", "!../retry"], "the duty model knows only src/retry; duties come to it from above"),
  layer(
    ["src/{config,kube,azure,metrics,events,leader,webhook,syncer,workload,ops,audit,model}/**", "src/log.ts", "certs/**"],
    ["**/duties/**", "**/lifecycle/**", "**/app.js", "**/operator.js", "**/main.js", "**/commands/**"],
    "domain code takes canWrite/signal (a Term's) in its deps; it never imports duties, the lifecycle or the composition root",
  ),
  layer(["src/duties/**", "src/commands/**"], ["**/app.js", "**/operator.js", "**/main.js"], "the composition root imports duties, never the reverse"),
  { files: ["eslint.config.js"], ...tseslint.configs.disableTypeChecked },
);

/** Production files in `files` may not import what `forbidden` matches (gitignore-style, relative specifiers). */
function layer(files, forbidden, message) {
  return { files, ignores: ["**/*.test.ts"], rules: { "no-restricted-imports": ["error", { patterns: [{ group: forbidden, message }] }] } };
}
