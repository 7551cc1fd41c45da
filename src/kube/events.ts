import { randomBytes } from "node:crypto";
import { EventsV1Api, V1MicroTime, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { kubeErrorMessage } from "./errors.js";

export interface ObjectEvent {
  /** What the event is about. */
  regarding: { apiVersion: string; kind: string; namespace: string; name: string };
  type: "Normal" | "Warning";
  /** CamelCase, machine-readable. */
  reason: string;
  /** What a person reads in `kubectl describe`. */
  note: string;
  action: string;
}

/** The same event for the same object is recorded at most once in this window. */
const REPEAT_WINDOW_MS = 60 * 60 * 1000;

/**
 * Records events.k8s.io/v1 Events on the objects the operator acts for, so a developer sees in
 * `kubectl describe` what happened to hers. Deduplicated per object and reason, best effort: a
 * failed Event is logged, never a reason to fail the work it reports on.
 */
export class EventRecorder {
  private readonly api: EventsV1Api;
  private readonly recent = new Map<string, number>();

  constructor(
    kubeConfig: KubeConfig,
    private readonly instance: string,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.api = kubeConfig.makeApiClient(EventsV1Api);
  }

  record(event: ObjectEvent): void {
    const { regarding } = event;
    const key = `${regarding.kind}/${regarding.namespace}/${regarding.name}/${event.reason}/${event.note}`;
    const last = this.recent.get(key);
    if (last !== undefined && this.now() - last < REPEAT_WINDOW_MS) return;
    this.recent.set(key, this.now());
    const body = {
      // As client-go names them: the object's name and a unique suffix (generateName would end in a dot).
      metadata: { name: `${regarding.name}.${this.now().toString(16)}${randomBytes(4).toString("hex")}`, namespace: regarding.namespace },
      eventTime: new V1MicroTime(this.now()),
      regarding,
      type: event.type,
      reason: event.reason,
      note: event.note.slice(0, 1024),
      action: event.action,
      reportingController: "azure-msi-operator",
      reportingInstance: this.instance,
    };
    // Best effort by design: the outcome is logged here and nobody waits for it.
    void this.api.createNamespacedEvent({ namespace: regarding.namespace, body }).catch((error: unknown) => {
      this.recent.delete(key);
      this.log.warn(
        { object: `${regarding.kind} ${regarding.namespace}/${regarding.name}`, reason: event.reason, err: kubeErrorMessage(error) },
        "could not record an Event",
      );
    });
  }
}
