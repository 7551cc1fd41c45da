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
  { files: ["eslint.config.js", ".dependency-cruiser.js"], ...tseslint.configs.disableTypeChecked },
  {
    // The chart's `helm test` script: plain JavaScript that node runs in the operator's image.
    files: ["charts/**/*.mjs"],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: { process: "readonly", Buffer: "readonly", console: "readonly", fetch: "readonly", AbortSignal: "readonly" },
    },
  },
);
