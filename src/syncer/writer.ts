import { setHeaderOptions, type CustomObjectsApi } from "@kubernetes/client-node";
import { statusCode, type WriteVerb } from "../kube/errors.js";
import { AAD_GROUP, AAD_VERSION, AZURE_IDENTITIES, AZURE_IDENTITY_BINDINGS, type AzureIdentity, type AzureIdentityBinding } from "../kube/resources.js";
import { kubeWriteRetry } from "../kube/retry.js";
import { withRetry, type RetryOptions } from "../retry/backoff.js";
import type { Metrics } from "../metrics/metrics.js";
import { toAzureIdentity, type DesiredIdentity } from "./desired.js";
import { identityPatch, type IdentityPatch } from "./diff.js";

export const FIELD_MANAGER = "azure-msi-operator";
const MERGE_PATCH = setHeaderOptions("Content-Type", "application/merge-patch+json");

/** Thrown instead of writing once this instance may no longer write (leadership lost). */
export class NotLeaderError extends Error {
  constructor() {
    super("not the leader: write skipped");
    this.name = "NotLeaderError";
  }
}

/**
 * The syncer's only way to change the cluster. Every request first asks `canWrite` (its term),
 * so writes stop the moment leadership is lost, and each request is counted (the zero-write steady
 * state is measured here). Conflicts and throttling are retried; a retry asleep in its backoff is
 * woken by `retry.signal` (the term's) and gives up, so it can never wake in a later term.
 */
export class IdentityWriter {
  private readonly counts: Record<WriteVerb, number> = { create: 0, patch: 0, delete: 0 };
  private readonly retry: Partial<RetryOptions>;

  constructor(
    private readonly api: CustomObjectsApi,
    private readonly canWrite: () => boolean,
    private readonly metrics: Metrics,
    retry?: Partial<RetryOptions>,
  ) {
    this.retry = { ...retry, shouldStop: () => !this.canWrite() };
  }

  /** Write requests made so far, by verb. */
  writes(): Readonly<Record<WriteVerb, number>> {
    return { ...this.counts };
  }

  /**
   * Creates the identity; if an object of that name already exists without the ownership label
   * (made by the Go original, or by hand before the webhook), it is adopted: patched to the desired
   * owned fields, the label included.
   */
  async createIdentity(desired: DesiredIdentity): Promise<AzureIdentity> {
    try {
      return await this.write(AZURE_IDENTITIES, "create", () =>
        this.api.createNamespacedCustomObject({
          group: AAD_GROUP,
          version: AAD_VERSION,
          namespace: desired.namespace,
          plural: AZURE_IDENTITIES,
          body: toAzureIdentity(desired),
          fieldManager: FIELD_MANAGER,
        }),
      );
    } catch (error) {
      if (statusCode(error) !== 409) throw error;
      const existing = (await this.api.getNamespacedCustomObject({
        group: AAD_GROUP,
        version: AAD_VERSION,
        namespace: desired.namespace,
        plural: AZURE_IDENTITIES,
        name: desired.name,
      })) as AzureIdentity;
      const diff = identityPatch(desired, existing);
      return diff ? this.patchIdentity(desired.namespace, desired.name, diff.patch) : existing;
    }
  }

  patchIdentity(namespace: string, name: string, patch: IdentityPatch): Promise<AzureIdentity> {
    return this.write(AZURE_IDENTITIES, "patch", () =>
      this.api.patchNamespacedCustomObject(
        { group: AAD_GROUP, version: AAD_VERSION, namespace, plural: AZURE_IDENTITIES, name, body: patch, fieldManager: FIELD_MANAGER },
        MERGE_PATCH,
      ),
    );
  }

  /** Deletes only the very object that was planned for deletion (uid and resourceVersion preconditions). */
  async deleteIdentity(namespace: string, name: string, preconditions: { uid?: string; resourceVersion?: string }): Promise<void> {
    try {
      await this.write(AZURE_IDENTITIES, "delete", () =>
        this.api.deleteNamespacedCustomObject({ group: AAD_GROUP, version: AAD_VERSION, namespace, plural: AZURE_IDENTITIES, name, body: { preconditions } }),
      );
    } catch (error) {
      if (statusCode(error) !== 404) throw error;
    }
  }

  patchBinding(namespace: string, name: string, azureIdentity: string): Promise<AzureIdentityBinding> {
    return this.write(AZURE_IDENTITY_BINDINGS, "patch", () =>
      this.api.patchNamespacedCustomObject(
        {
          group: AAD_GROUP,
          version: AAD_VERSION,
          namespace,
          plural: AZURE_IDENTITY_BINDINGS,
          name,
          body: { spec: { azureIdentity } },
          fieldManager: FIELD_MANAGER,
        },
        MERGE_PATCH,
      ),
    );
  }

  private async write<T>(resource: string, verb: WriteVerb, request: () => Promise<unknown>): Promise<T> {
    try {
      return await this.attempts(resource, verb, request);
    } catch (error) {
      // Whatever ended the attempts (an abort, the last failure), a writer that may no longer write
      // says so: the caller stops its pass instead of counting a failure and going on.
      if (!this.canWrite() || this.retry.signal?.aborted) throw new NotLeaderError();
      throw error;
    }
  }

  private attempts<T>(resource: string, verb: WriteVerb, request: () => Promise<unknown>): Promise<T> {
    return withRetry(async () => {
      if (!this.canWrite()) throw new NotLeaderError();
      this.counts[verb]++;
      try {
        const result = (await request()) as T;
        this.metrics.kubeWrites.inc({ resource, verb, result: "success" });
        return result;
      } catch (error) {
        this.metrics.kubeWrites.inc({ resource, verb, result: "error" });
        throw error;
      }
    }, this.retryFor(verb));
  }

  private retryFor(verb: WriteVerb): RetryOptions {
    const options = kubeWriteRetry(verb, this.retry);
    return { ...options, retryable: (error) => !(error instanceof NotLeaderError) && options.retryable(error) };
  }
}
