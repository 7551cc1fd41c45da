// Just enough of the Dockerfile syntax to check the image recipe without Docker: stages, and each
// stage's instructions (comments dropped, backslash continuations joined).
export interface Instruction {
  keyword: string;
  args: string;
}

export interface Stage {
  image: string;
  /** FROM's --platform (e.g. $BUILDPLATFORM), undefined: the target platform. */
  platform: string | undefined;
  name: string | undefined;
  instructions: Instruction[];
}

export function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (pending === "" && (line === "" || line.startsWith("#"))) continue;
    if (line.startsWith("#")) continue; // a comment inside a continued instruction
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    logical.push(`${pending}${line}`.trim());
    pending = "";
  }
  if (pending) logical.push(pending.trim());
  const stages: Stage[] = [];
  for (const line of logical) {
    const match = /^(\S+)\s*(.*)$/.exec(line);
    if (!match) continue;
    const keyword = match[1]!.toUpperCase();
    const args = match[2] ?? "";
    if (keyword === "FROM") {
      const from = /^(?:--platform=(\S+)\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!from) throw new Error(`cannot read FROM ${args}`);
      stages.push({ image: from[2]!, platform: from[1], name: from[3], instructions: [] });
      continue;
    }
    const stage = stages[stages.length - 1];
    if (!stage) {
      if (keyword === "ARG") continue; // ARGs before the first FROM
      throw new Error(`${keyword} before the first FROM`);
    }
    stage.instructions.push({ keyword, args });
  }
  return stages;
}

/** An exec-form instruction's argument list (`["node", "x.js"]`), or undefined for shell form. */
export function execForm(args: string): string[] | undefined {
  if (!args.trim().startsWith("[")) return undefined;
  const parsed: unknown = JSON.parse(args);
  return Array.isArray(parsed) && parsed.every((item) => typeof item === "string") ? parsed : undefined;
}

/** `COPY [--from=stage] src... dest` as data. */
export function copyOf(args: string): { from: string | undefined; sources: string[]; dest: string } {
  const words = args.split(/\s+/).filter((word) => word !== "");
  let from: string | undefined;
  const rest: string[] = [];
  for (const word of words) {
    const flag = /^--from=(.+)$/.exec(word);
    if (flag) from = flag[1];
    else if (!word.startsWith("--")) rest.push(word);
  }
  const dest = rest.pop();
  if (dest === undefined || rest.length === 0) throw new Error(`cannot read COPY ${args}`);
  return { from, sources: rest, dest };
}

/** The Node release of an official node image (`node:24.22.3-bookworm-slim` -> 24.22.3), or undefined when the tag names no exact release. */
export function pinnedNodeVersion(image: string): string | undefined {
  return /^(?:docker\.io\/(?:library\/)?)?node:(\d+\.\d+\.\d+)(?:-[\w.-]+)?(?:@sha256:[0-9a-f]{64})?$/.exec(image)?.[1];
}
