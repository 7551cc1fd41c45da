import { TokenBucket } from "../retry/token-bucket.js";

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  /** The object's namespace; a Namespace's own name for a Namespace (its Events live there). */
  namespace: string;
  name: string;
  /** `kubectl describe` finds Events by the object's uid: without it they show only in `kubectl events`. */
  uid?: string;
}

export interface ObjectEvent {
  /** What the event is about. */
  regarding: ObjectRef;
  type: "Normal" | "Warning";
  /** CamelCase, machine-readable. */
  reason: string;
  /** What a person reads in `kubectl describe`. */
  note: string;
  action: string;
}

export interface CorrelatorOptions {
  /** Event writes (creates and patches) allowed at once ... */
  burst: number;
  /** ... and sustained, per second, for the whole process. */
  perSecond: number;
  /** Distinct notes one object gets for one reason before further ones are combined into one Event. */
  similarLimit: number;
  /** A repeated Event's count is written (PATCH of its series) at most this often. */
  refreshMs: number;
  /** An Event not seen for this long is forgotten: seen again, it is a new Event. */
  forgetMs: number;
  /** Events remembered at most (least recently seen forgotten first). */
  maxEntries: number;
}

/**
 * As client-go's: 25 Events in a burst per object there, 50 for the process here; the series
 * refresh of its events library (30 min); forgotten after two default sync intervals, so an MSI
 * skipped at every hourly sync stays one Event whose count grows.
 */
export const DEFAULT_CORRELATOR: CorrelatorOptions = {
  burst: 50,
  perSecond: 1,
  similarLimit: 10,
  refreshMs: 30 * 60_000,
  forgetMs: 2 * 60 * 60_000,
  maxEntries: 16_384,
};

/** The correlator as the --events.* flags set it (a rate per minute there, per second here). */
export function correlatorOptionsFrom(events: { burst: number; perMinute: number; refreshMs: number }): CorrelatorOptions {
  return { ...DEFAULT_CORRELATOR, burst: events.burst, perSecond: events.perMinute / 60, refreshMs: events.refreshMs };
}

export const COMBINED_PREFIX = "(combined from similar events): ";

/** One Event as written: the first occurrence and how often it was seen since. */
export interface EventSeries {
  readonly key: string;
  readonly event: ObjectEvent;
  /** Set by the writer when it creates the Event (a new name when it has to create it again). */
  name: string;
  firstMs: number;
  count: number;
  lastObservedMs: number;
  /** The count the API server has (0: not created yet). */
  writtenCount: number;
  lastWriteMs: number;
}

export type Decision =
  /** Create the Event (series.count > 1: it was seen before and the server lost it, or a write failed). */
  | { kind: "create"; series: EventSeries }
  /** Counted in memory, written by a later due() (a PATCH of its series). */
  | { kind: "deferred" }
  /** Over the rate limit: not written, not remembered (the next occurrence tries again). */
  | { kind: "dropped" };

const refKey = (ref: ObjectRef) => `${ref.apiVersion}\u0000${ref.kind}\u0000${ref.namespace}\u0000${ref.name}\u0000${ref.uid ?? ""}`;

/**
 * Decides which Events are written, and how (pure; the clock is passed in), as client-go's
 * EventCorrelator does: the same Event again is one Event with a growing series count (written at most
 * every refreshMs), many different notes for one object and reason become one combined Event, and a
 * token bucket caps the writes of the whole process.
 */
export class EventCorrelator {
  private readonly bucket: TokenBucket;
  private readonly series = new Map<string, EventSeries>();
  /** Per object and reason: the distinct notes seen (up to similarLimit) and when last. */
  private readonly similar = new Map<string, { notes: Set<string>; lastMs: number }>();

  constructor(
    private readonly options: CorrelatorOptions,
    nowMs: number,
  ) {
    this.bucket = new TokenBucket(options.burst, options.perSecond, nowMs);
  }

  get size(): number {
    return this.series.size;
  }

  observe(event: ObjectEvent, nowMs: number): Decision {
    const similarKey = `${refKey(event.regarding)}\u0000${event.type}\u0000${event.reason}\u0000${event.action}`;
    const seen = this.touch(`${similarKey}\u0000${event.note}`, nowMs);
    if (seen) return this.repeat(seen, nowMs);
    const similar = this.similar.get(similarKey);
    const known = similar?.notes.has(event.note) ?? false;
    if (similar && !known && similar.notes.size >= this.options.similarLimit) {
      similar.lastMs = nowMs;
      const combined = { ...event, note: `${COMBINED_PREFIX}${event.note}` };
      const key = `${similarKey}\u0001combined`;
      const existing = this.touch(key, nowMs);
      return existing ? this.repeat(existing, nowMs) : this.create(key, combined, nowMs);
    }
    // Counted whether written or dropped: a flood fills the limit at once and the rest is combined
    // (one Event, counted in memory) instead of competing for the rate limit note by note.
    if (similar) {
      similar.notes.add(event.note);
      similar.lastMs = nowMs;
    } else this.similar.set(similarKey, { notes: new Set([event.note]), lastMs: nowMs });
    return this.create(`${similarKey}\u0000${event.note}`, event, nowMs);
  }

  /**
   * The series whose count the server does not have yet and that were not written for refreshMs,
   * as many as the rate limit allows now; forgets what was not seen for forgetMs.
   */
  due(nowMs: number): EventSeries[] {
    this.forgetOlderThan(nowMs - this.options.forgetMs);
    const due: EventSeries[] = [];
    for (const series of this.series.values()) {
      if (series.count <= series.writtenCount || nowMs - series.lastWriteMs < this.options.refreshMs) continue;
      if (!this.bucket.take(nowMs)) break;
      this.markWritten(series, nowMs);
      due.push(series);
    }
    return due;
  }

  /** A write failed: forget the series, so its next occurrence is a new Event. */
  failed(series: EventSeries): void {
    if (this.series.get(series.key) === series) this.series.delete(series.key);
  }

  /** A repeat is only counted: due() writes the count later, so new Events get the tokens first. */
  private repeat(series: EventSeries, nowMs: number): Decision {
    series.count++;
    series.lastObservedMs = nowMs;
    return { kind: "deferred" };
  }

  private create(key: string, event: ObjectEvent, nowMs: number): Decision {
    if (!this.bucket.take(nowMs)) return { kind: "dropped" };
    const series: EventSeries = { key, event, name: "", firstMs: nowMs, count: 1, lastObservedMs: nowMs, writtenCount: 0, lastWriteMs: nowMs };
    this.markWritten(series, nowMs);
    this.series.set(key, series);
    if (this.series.size > this.options.maxEntries) {
      const oldest = this.series.keys().next().value;
      if (oldest !== undefined) this.series.delete(oldest);
    }
    return { kind: "create", series };
  }

  /** The series for key, moved to the most recently seen end (the Map's order is the eviction order). */
  private touch(key: string, nowMs: number): EventSeries | undefined {
    const series = this.series.get(key);
    if (!series) return undefined;
    if (nowMs - series.lastObservedMs >= this.options.forgetMs) {
      this.series.delete(key);
      return undefined;
    }
    this.series.delete(key);
    this.series.set(key, series);
    return series;
  }

  private markWritten(series: EventSeries, nowMs: number): void {
    series.writtenCount = series.count;
    series.lastWriteMs = nowMs;
  }

  private forgetOlderThan(cutoffMs: number): void {
    for (const [key, series] of this.series) if (series.lastObservedMs < cutoffMs) this.series.delete(key);
    for (const [key, similar] of this.similar) if (similar.lastMs < cutoffMs) this.similar.delete(key);
  }
}
