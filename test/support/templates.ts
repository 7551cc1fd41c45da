import { compileTemplate, type CompiledTemplate } from "../../src/template/template.js";

/** A template the test knows to be valid; a compile error fails the test at once with its message. */
export function template(source: string): CompiledTemplate {
  const compiled = compileTemplate(source, "--test");
  if (!compiled.ok) throw new Error(compiled.error);
  return compiled.template;
}
