// Go time layouts ("2006-01-02", "Jan _2 15:04:05", "2006-01-02T15:04:05Z07:00") for
// --azureidentity.expiry.timeformat, so annotation values look exactly as the Go operator wrote them.
//
// Times are always formatted in UTC. The Go operator used time.Now() in the container's local zone,
// which in its (and almost every) image is UTC; formatting in UTC here keeps values identical
// there and makes them independent of the TZ of wherever this process runs. "MST" prints "UTC" and
// zone offsets print as +00:00 / Z accordingly.

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

type Element =
  | "LongMonth"
  | "Month"
  | "NumMonth"
  | "ZeroMonth"
  | "LongWeekDay"
  | "WeekDay"
  | "Day"
  | "UnderDay"
  | "ZeroDay"
  | "UnderYearDay"
  | "ZeroYearDay"
  | "Hour"
  | "Hour12"
  | "ZeroHour12"
  | "Minute"
  | "ZeroMinute"
  | "Second"
  | "ZeroSecond"
  | "LongYear"
  | "Year"
  | "PM"
  | "pm"
  | "TZ"
  | "ISO8601TZ"
  | "ISO8601SecondsTZ"
  | "ISO8601ShortTZ"
  | "ISO8601ColonTZ"
  | "ISO8601ColonSecondsTZ"
  | "NumTZ"
  | "NumSecondsTz"
  | "NumShortTZ"
  | "NumColonTZ"
  | "NumColonSecondsTZ";

/** A literal run of text, a layout element, or fractional seconds (".000" keeps zeros, ".999" trims them). */
type Chunk = { text: string } | { element: Element } | { fraction: number; trim: boolean; separator: string };

export interface TimeLayout {
  readonly source: string;
  format(date: Date): string;
}

export type LayoutResult = { ok: true; layout: TimeLayout } | { ok: false; error: string };

const ZERO_X: readonly Element[] = ["ZeroMonth", "ZeroDay", "ZeroHour12", "ZeroMinute", "ZeroSecond", "Year"];
// Longest first, as Go matches them.
const DASH_ZONES: ReadonlyArray<[string, Element]> = [
  ["-070000", "NumSecondsTz"],
  ["-07:00:00", "NumColonSecondsTZ"],
  ["-0700", "NumTZ"],
  ["-07:00", "NumColonTZ"],
  ["-07", "NumShortTZ"],
];
const Z_ZONES: ReadonlyArray<[string, Element]> = [
  ["Z070000", "ISO8601SecondsTZ"],
  ["Z07:00:00", "ISO8601ColonSecondsTZ"],
  ["Z0700", "ISO8601TZ"],
  ["Z07:00", "ISO8601ColonTZ"],
  ["Z07", "ISO8601ShortTZ"],
];

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= "0" && c <= "9";
const startsLower = (s: string): boolean => s.length > 0 && s[0]! >= "a" && s[0]! <= "z";

/** The element (and its length) that starts at `at`, following the precedence of Go's nextStdChunk. */
// Go's nextStdChunk is one switch over the layout's next character; so is this, to stay comparable.
// eslint-disable-next-line complexity
function elementAt(layout: string, at: number): { chunk: Chunk; length: number } | undefined {
  const rest = layout.slice(at);
  const el = (element: Element, length: number) => ({ chunk: { element }, length });
  switch (rest[0]) {
    case "J":
      if (rest.startsWith("January")) return el("LongMonth", 7);
      if (rest.startsWith("Jan") && !startsLower(rest.slice(3))) return el("Month", 3);
      return undefined;
    case "M":
      if (rest.startsWith("Monday")) return el("LongWeekDay", 6);
      if (rest.startsWith("Mon") && !startsLower(rest.slice(3))) return el("WeekDay", 3);
      if (rest.startsWith("MST")) return el("TZ", 3);
      return undefined;
    case "0":
      if (rest[1] !== undefined && rest[1] >= "1" && rest[1] <= "6") return el(ZERO_X[Number(rest[1]) - 1]!, 2);
      if (rest.startsWith("002")) return el("ZeroYearDay", 3);
      return undefined;
    case "1":
      return rest[1] === "5" ? el("Hour", 2) : el("NumMonth", 1);
    case "2":
      return rest.startsWith("2006") ? el("LongYear", 4) : el("Day", 1);
    case "_":
      // "_2006" is a literal underscore followed by the year; the caller sees the year next.
      if (rest[1] === "2" && !rest.startsWith("_2006")) return el("UnderDay", 2);
      if (rest.startsWith("__2")) return el("UnderYearDay", 3);
      return undefined;
    case "3":
      return el("Hour12", 1);
    case "4":
      return el("Minute", 1);
    case "5":
      return el("Second", 1);
    case "P":
      return rest[1] === "M" ? el("PM", 2) : undefined;
    case "p":
      return rest[1] === "m" ? el("pm", 2) : undefined;
    case "-":
      for (const [text, element] of DASH_ZONES) if (rest.startsWith(text)) return el(element, text.length);
      return undefined;
    case "Z":
      for (const [text, element] of Z_ZONES) if (rest.startsWith(text)) return el(element, text.length);
      return undefined;
    case ".":
    case ",": {
      const digit = rest[1];
      if (digit !== "0" && digit !== "9") return undefined;
      let end = 1;
      while (rest[end] === digit) end++;
      // Only a run of digits that ends there is a fraction ("2006.01" is not).
      if (isDigit(rest[end])) return undefined;
      return { chunk: { fraction: Math.min(end - 1, 9), trim: digit === "9", separator: rest[0] }, length: end };
    }
    default:
      return undefined;
  }
}

function tokenize(layout: string): Chunk[] {
  const chunks: Chunk[] = [];
  let text = "";
  for (let i = 0; i < layout.length;) {
    const found = elementAt(layout, i);
    if (found === undefined) {
      text += layout[i];
      i++;
      continue;
    }
    if (text !== "") chunks.push({ text });
    text = "";
    chunks.push(found.chunk);
    i += found.length;
  }
  if (text !== "") chunks.push({ text });
  return chunks;
}

const pad = (value: number, width: number): string => {
  const digits = String(Math.abs(value)).padStart(width, "0");
  return value < 0 ? "-" + digits : digits;
};

function dayOfYear(date: Date): number {
  return Math.floor((Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate()) - Date.UTC(date.getUTCFullYear(), 0, 1)) / 86_400_000) + 1;
}

// One case per layout element, as Go's appendFormat.
// eslint-disable-next-line complexity
function formatElement(element: Element, d: Date): string {
  const hour = d.getUTCHours();
  const hour12 = hour % 12 === 0 ? 12 : hour % 12;
  switch (element) {
    case "LongYear":
      return pad(d.getUTCFullYear(), 4);
    case "Year":
      return pad(Math.abs(d.getUTCFullYear()) % 100, 2);
    case "LongMonth":
      return MONTHS[d.getUTCMonth()]!;
    case "Month":
      return MONTHS[d.getUTCMonth()]!.slice(0, 3);
    case "NumMonth":
      return String(d.getUTCMonth() + 1);
    case "ZeroMonth":
      return pad(d.getUTCMonth() + 1, 2);
    case "LongWeekDay":
      return WEEKDAYS[d.getUTCDay()]!;
    case "WeekDay":
      return WEEKDAYS[d.getUTCDay()]!.slice(0, 3);
    case "Day":
      return String(d.getUTCDate());
    case "UnderDay":
      return String(d.getUTCDate()).padStart(2, " ");
    case "ZeroDay":
      return pad(d.getUTCDate(), 2);
    case "UnderYearDay":
      return String(dayOfYear(d)).padStart(3, " ");
    case "ZeroYearDay":
      return pad(dayOfYear(d), 3);
    case "Hour":
      return pad(hour, 2);
    case "Hour12":
      return String(hour12);
    case "ZeroHour12":
      return pad(hour12, 2);
    case "Minute":
      return String(d.getUTCMinutes());
    case "ZeroMinute":
      return pad(d.getUTCMinutes(), 2);
    case "Second":
      return String(d.getUTCSeconds());
    case "ZeroSecond":
      return pad(d.getUTCSeconds(), 2);
    case "PM":
      return hour >= 12 ? "PM" : "AM";
    case "pm":
      return hour >= 12 ? "pm" : "am";
    case "TZ":
      return "UTC";
    // At offset zero the ISO 8601 forms print "Z"; the numeric forms print zeros.
    case "ISO8601TZ":
    case "ISO8601SecondsTZ":
    case "ISO8601ShortTZ":
    case "ISO8601ColonTZ":
    case "ISO8601ColonSecondsTZ":
      return "Z";
    case "NumTZ":
      return "+0000";
    case "NumSecondsTz":
      return "+000000";
    case "NumShortTZ":
      return "+00";
    case "NumColonTZ":
      return "+00:00";
    case "NumColonSecondsTZ":
      return "+00:00:00";
  }
}

function formatFraction(date: Date, digits: number, trim: boolean, separator: string): string {
  // Dates carry milliseconds; the nanosecond digits beyond them are zero.
  let text = String(date.getUTCMilliseconds()).padStart(3, "0").padEnd(9, "0").slice(0, digits);
  if (trim) {
    text = text.replace(/0+$/, "");
    if (text === "") return "";
  }
  return separator + text;
}

/** Parses a layout once; fails when it holds no element at all (it would print a constant). */
export function compileLayout(source: string): LayoutResult {
  const chunks = tokenize(source);
  if (!chunks.some((chunk) => !("text" in chunk))) {
    return { ok: false, error: "not a Go time layout: it contains no date or time element (example: 2006-01-02 or 2006-01-02T15:04:05Z07:00)" };
  }
  return {
    ok: true,
    layout: {
      source,
      format: (date: Date) =>
        chunks
          .map((chunk) =>
            "text" in chunk
              ? chunk.text
              : "element" in chunk
                ? formatElement(chunk.element, date)
                : formatFraction(date, chunk.fraction, chunk.trim, chunk.separator),
          )
          .join(""),
    },
  };
}

/** Formats `date` (in UTC) with a Go layout; throws on a layout compileLayout rejects. */
export function formatGoTime(date: Date, layout: string): string {
  const compiled = compileLayout(layout);
  if (!compiled.ok) throw new Error(compiled.error);
  return compiled.layout.format(date);
}
