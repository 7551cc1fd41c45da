// Large admission bodies leave tens of MiB of garbage each (a 3.3 MiB review of many small fields
// parses to ~35 MiB of V8 objects, most of it in large-object space, which only a major GC frees).
// V8 sizes its heap from the machine, or from the container's limit, and with a limit of 256 MiB or
// more it lets that garbage pile up well past the replica's own memory limit before it collects
// (RELIABILITY.md, "Hostile clients": 297-355 MiB under 48 clients posting 3.3 MiB reviews, with at
// most two bodies in flight). So after every few MiB of large bodies the server asks V8 for a major
// GC, incremental and concurrent ("async"), which does not stop the event loop the way gc() does.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

type Gc = (options: { type: "major"; execution: "async" }) => void;

/** V8's gc(), installed only in a context of its own (nothing else in the process sees a global gc). */
function exposeGc(): Gc | undefined {
  try {
    setFlagsFromString("--expose-gc");
    const gc: unknown = runInNewContext("gc");
    return typeof gc === "function" ? (gc as Gc) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Counts the bytes of large bodies answered since the last collection and decides when to ask for
 * the next one (pure: `collect` does the asking).
 */
export class LargeBodyReclaimer {
  private since = 0;

  constructor(
    /** Bodies larger than this count; the API server's usual reviews never do. */
    private readonly largeBytes: number,
    /** A collection is asked for once this many bytes of large bodies were answered. */
    private readonly everyBytes: number,
    private readonly collect: () => void = defaultCollect(),
  ) {}

  /** A request declaring `bytes` of body is done (answered, refused or cut off). */
  done(bytes: number): boolean {
    if (bytes <= this.largeBytes) return false;
    this.since += bytes;
    if (this.since < this.everyBytes) return false;
    this.since = 0;
    this.collect();
    return true;
  }
}

function defaultCollect(): () => void {
  const gc = exposeGc();
  return gc ? () => gc({ type: "major", execution: "async" }) : () => undefined;
}
