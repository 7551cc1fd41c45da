// Resolves each flag from the command line, else its env var, else its default (go-flags' order),
// and parses it by kind. The first bad value stops parsing with one line that names the flag, the
// env var when the value came from there, and the value.
import { compileTemplate, type CompiledTemplate } from "../template/template.js";
import type { CliValue } from "./argv.js";
import { formatDuration } from "./duration.js";
import { FLAGS, type FlagKind, type FlagSpec } from "./flags.js";
import { compileLayout, type TimeLayout } from "./timelayout.js";
import {
  parseAddress,
  parseBool,
  parseDurationMs,
  parseInt10,
  parseRotation,
  splitEnvList,
  type ListenAddress,
  type Parsed,
  type RotationPolicy,
} from "./values.js";

export type Env = Readonly<Record<string, string | undefined>>;

/** A configuration error meant for the user: its message is the whole line to print. */
export class ConfigError extends Error {}

interface Source {
  origin: "flag" | "env" | "default";
  /** `--sync.interval` or `--sync.interval (SYNC_INTERVAL)`. */
  label: string;
}

export class FlagReader {
  /** Which flags were read, so a test can prove no flag of the table is ignored. */
  readonly used = new Set<string>();

  constructor(
    private readonly cli: ReadonlyMap<string, CliValue>,
    private readonly env: Env,
  ) {}

  bool(name: string): boolean {
    return this.scalar(name, "bool", parseBool) ?? false;
  }

  /** Undefined when the flag has no default and was not given. */
  string(name: string): string | undefined {
    return this.scalar(name, "string", (raw) => ({ ok: true, value: raw }));
  }

  duration(name: string): number {
    return this.required(name, this.scalar(name, "duration", parseDurationMs));
  }

  int(name: string): number {
    return this.required(name, this.scalar(name, "int", parseInt10));
  }

  address(name: string): ListenAddress {
    return this.required(name, this.scalar(name, "address", parseAddress));
  }

  rotation(name: string): RotationPolicy {
    return this.required(name, this.scalar(name, "rotation", parseRotation));
  }

  layout(name: string): TimeLayout {
    return this.required(
      name,
      this.scalar(name, "layout", (raw) => {
        const compiled = compileLayout(raw);
        return compiled.ok ? { ok: true, value: compiled.layout } : { ok: false, reason: compiled.error };
      }),
    );
  }

  template(name: string): CompiledTemplate {
    const { raw, source } = this.resolve(name, "template");
    if (typeof raw !== "string") throw new Error(`flag --${name} has no default`);
    const compiled = compileTemplate(raw, source.label);
    if (!compiled.ok) throw new ConfigError(compiled.error);
    return compiled.template;
  }

  /** Each item checked by `check` (returns why an item is bad). Empty items are dropped. */
  list(name: string, check: (item: string) => string | undefined = () => undefined): string[] {
    const { raw, source } = this.resolve(name, "list");
    const items = (typeof raw === "string" ? splitEnvList(raw) : [...(raw ?? [])]).filter((item) => item !== "");
    for (const item of items) {
      const reason = check(item);
      if (reason !== undefined) throw this.invalid(item, source, reason);
    }
    return items;
  }

  /** Fails with a message for a value that parsed but is not acceptable (e.g. a format rule). */
  check(name: string, value: string, reason: string | undefined): void {
    if (reason !== undefined) throw this.invalid(value, this.resolve(name, undefined).source, reason);
  }

  private scalar<T>(name: string, kind: FlagKind, parse: (raw: string) => Parsed<T>): T | undefined {
    const { raw, source, spec } = this.resolve(name, kind);
    if (raw === undefined) return undefined;
    if (typeof raw !== "string") throw new Error(`flag --${name}: a list default for a scalar`);
    const parsed = parse(raw);
    if (!parsed.ok) {
      if (source.origin === "default") throw new Error(`flag --${name}: bad default ${JSON.stringify(raw)}: ${parsed.reason}`);
      throw this.invalid(raw, source, parsed.reason);
    }
    if (typeof parsed.value === "number") this.checkBounds(spec, parsed.value, raw, source);
    return parsed.value;
  }

  private checkBounds(spec: FlagSpec, value: number, raw: string, source: Source): void {
    const show = (n: number) => (spec.kind === "duration" ? formatDuration(n) : String(n));
    if (spec.min !== undefined && (spec.minExclusive ? value <= spec.min : value < spec.min)) {
      const reason =
        spec.kind === "duration" && spec.min === 0
          ? spec.minExclusive
            ? "must be greater than 0"
            : "must not be negative"
          : `must be ${spec.minExclusive ? "greater than" : "at least"} ${show(spec.min)}`;
      throw this.invalid(raw, source, reason);
    }
    if (spec.max !== undefined && value > spec.max) throw this.invalid(raw, source, `must be at most ${show(spec.max)}`);
  }

  private required<T>(name: string, value: T | undefined): T {
    if (value === undefined) throw new Error(`flag --${name} has no default`);
    return value;
  }

  private resolve(name: string, kind: FlagKind | undefined): { raw: string | readonly string[] | undefined; source: Source; spec: FlagSpec } {
    const spec = FLAGS.find((flag) => flag.name === name);
    if (spec === undefined) throw new Error(`no flag --${name} in the table`);
    if (kind !== undefined && spec.kind !== kind) throw new Error(`flag --${name} is a ${spec.kind}, read as ${kind}`);
    this.used.add(name);
    const given = this.cli.get(name);
    if (given !== undefined) {
      const raw = spec.kind === "list" ? given.values : given.values[given.values.length - 1];
      return { raw, spec, source: { origin: "flag", label: given.via } };
    }
    for (const envName of spec.env ?? []) {
      const raw = this.env[envName];
      if (raw !== undefined) return { raw, spec, source: { origin: "env", label: `--${name} (${envName})` } };
    }
    return { raw: spec.default, spec, source: { origin: "default", label: `--${name}` } };
  }

  private invalid(value: string, source: Source, reason: string): ConfigError {
    return new ConfigError(`invalid value ${JSON.stringify(value)} for ${source.label}: ${reason}`);
  }
}
