// Large admission bodies leave tens of MiB of garbage each (a 3.3 MiB review of many small fields
// parses to ~35 MiB of V8 objects, most of it in large-object space, which only a major GC frees).
// V8 sizes its heap from the machine, or from the container's limit, and with a limit of 256 MiB or
// more it lets that garbage pile up well past the replica's own memory limit before it collects
// (RELIABILITY.md, "Hostile clients": 297-355 MiB under 48 clients posting 3.3 MiB reviews, with at
// most two bodies in flight). So after every MiB of large bodies (at most four times a second) the server
// asks V8 for a major GC, incremental and concurrent ("async"), which does not stop the event loop the way gc() does.
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
 * Decides when to ask for a collection (pure: the clock is passed in, `collect` does the asking): after
 * every `everyBytes` of large bodies received whole, but at most once per `minIntervalMs`. Without the
 * interval a process with a large live heap marked it again and again when large bodies came in a burst
 * (the fuzz test ran 20 times slower); measuring the heap's growth per body instead missed most of the garbage.
 */
export class LargeBodyReclaimer {
  private since = 0;
  private last = -Infinity;

  constructor(
    /** Bodies larger than this count; the API server's usual reviews never do. */
    private readonly largeBytes: number,
    private readonly everyBytes: number,
    private readonly minIntervalMs: number,
    private readonly collect: () => void = defaultCollect(),
  ) {}

  /** A request whose body of `bytes` was received whole has been answered at `nowMs`. */
  done(bytes: number, nowMs: number): boolean {
    if (bytes <= this.largeBytes) return false;
    this.since += bytes;
    if (this.since < this.everyBytes || nowMs - this.last < this.minIntervalMs) return false;
    this.since = 0;
    this.last = nowMs;
    this.collect();
    return true;
  }
}

function defaultCollect(): () => void {
  const gc = exposeGc();
  return gc ? () => gc({ type: "major", execution: "async" }) : () => undefined;
}
