// Go's time.ParseDuration and Duration.String, so SYNC_INTERVAL=1h30m and friends mean exactly what
// they meant to the Go operator. The arithmetic runs on int64 nanoseconds (bigint), as in Go, so
// overflow and fraction rounding match; callers get milliseconds, which is what Node timers take.

const NS_PER_MS = 1_000_000n;
const MAX_UINT = 1n << 63n; // Go accumulates in uint64 and allows up to 1<<63 for the minimum int64

const UNITS: ReadonlyMap<string, bigint> = new Map([
  ["ns", 1n],
  ["us", 1_000n],
  ["µs", 1_000n], // U+00B5 micro sign
  ["μs", 1_000n], // U+03BC Greek mu
  ["ms", 1_000_000n],
  ["s", 1_000_000_000n],
  ["m", 60_000_000_000n],
  ["h", 3_600_000_000_000n],
]);

export type DurationResult = { ok: true; ns: bigint; ms: number } | { ok: false; error: string };

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= "0" && c <= "9";

/** Parses a Go duration ("1h30m", "-1.5s", "0") into nanoseconds and milliseconds. */
// A port of Go's time.ParseDuration, kept in its shape so the two can be compared line by line.
// eslint-disable-next-line complexity
export function parseDuration(text: string): DurationResult {
  const invalid = (): DurationResult => ({ ok: false, error: `invalid duration ${JSON.stringify(text)}` });
  let s = text;
  let negative = false;
  if (s.startsWith("-") || s.startsWith("+")) {
    negative = s.startsWith("-");
    s = s.slice(1);
  }
  if (s === "0") return { ok: true, ns: 0n, ms: 0 };
  if (s === "") return invalid();
  let total = 0n;
  while (s !== "") {
    if (!(s[0] === "." || isDigit(s[0]))) return invalid();
    let i = 0;
    let whole = 0n;
    while (isDigit(s[i])) {
      whole = whole * 10n + BigInt(s.charCodeAt(i) - 48);
      if (whole > MAX_UINT) return invalid();
      i++;
    }
    const hasWhole = i > 0;
    let fraction = 0n;
    let scale = 1;
    let hasFraction = false;
    if (s[i] === ".") {
      i++;
      const start = i;
      let saturated = false;
      // Like Go: digits beyond what fits are consumed but ignored.
      while (isDigit(s[i])) {
        if (!saturated) {
          const next = fraction * 10n + BigInt(s.charCodeAt(i) - 48);
          if (next > MAX_UINT) saturated = true;
          else {
            fraction = next;
            scale *= 10;
          }
        }
        i++;
      }
      hasFraction = i > start;
    }
    if (!hasWhole && !hasFraction) return invalid();
    s = s.slice(i);
    let u = 0;
    while (u < s.length && s[u] !== "." && !isDigit(s[u])) u++;
    if (u === 0) return { ok: false, error: `missing unit in duration ${JSON.stringify(text)}` };
    const unitName = s.slice(0, u);
    s = s.slice(u);
    const unit = UNITS.get(unitName);
    if (unit === undefined) return { ok: false, error: `unknown unit ${JSON.stringify(unitName)} in duration ${JSON.stringify(text)}` };
    if (whole > MAX_UINT / unit) return invalid();
    let value = whole * unit;
    if (fraction > 0n) {
      // Go computes the fractional part in float64 and truncates; doing the same keeps results identical.
      value += BigInt(Math.trunc(Number(fraction) * (Number(unit) / scale)));
      if (value > MAX_UINT) return invalid();
    }
    total += value;
    if (total > MAX_UINT) return invalid();
  }
  if (!negative && total > MAX_UINT - 1n) return invalid();
  const ns = negative ? -total : total;
  return { ok: true, ns, ms: nsToMs(ns) };
}

/** Nanoseconds to milliseconds, exact for whole milliseconds however large. */
export function nsToMs(ns: bigint): number {
  const whole = ns / NS_PER_MS;
  const rest = ns % NS_PER_MS;
  return rest === 0n ? Number(whole) : Number(whole) + Number(rest) / 1e6;
}

/** Milliseconds back to whole nanoseconds (the inverse of nsToMs for values it produced). */
export function msToNs(ms: number): bigint {
  const whole = Math.trunc(ms);
  return BigInt(whole) * NS_PER_MS + BigInt(Math.round((ms - whole) * 1e6));
}

/** Go's Duration.String(): "1h0m0s", "1.5s", "250ms", "0s". */
export function formatDuration(ms: number): string {
  return formatDurationNs(msToNs(ms));
}

export function formatDurationNs(ns: bigint): string {
  const negative = ns < 0n;
  let u = negative ? -ns : ns;
  let out: string;
  if (u < 1_000_000_000n) {
    if (u === 0n) return "0s";
    // Below one second Go switches to the largest unit that keeps an integer part.
    const [unit, precision] = u < 1_000n ? ["ns", 0] : u < 1_000_000n ? ["µs", 3] : ["ms", 6];
    out = fractional(u, precision) + unit;
  } else {
    const seconds = fractional(u % 60_000_000_000n, 9) + "s";
    u /= 60_000_000_000n;
    if (u === 0n) out = seconds;
    else {
      const minutes = `${u % 60n}m`;
      u /= 60n;
      out = (u > 0n ? `${u}h` : "") + minutes + seconds;
    }
  }
  return negative ? "-" + out : out;
}

/** `value / 10^precision` with trailing zeros (and a bare point) dropped. */
function fractional(value: bigint, precision: number): string {
  const divisor = 10n ** BigInt(precision);
  const whole = value / divisor;
  const fraction = (value % divisor).toString().padStart(precision, "0").replace(/0+$/, "");
  return fraction === "" ? `${whole}` : `${whole}.${fraction}`;
}
