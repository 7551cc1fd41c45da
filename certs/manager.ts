import { isIP } from "node:net";
import {
  setHeaderOptions,
  type AdmissionregistrationV1Api,
  type CoreV1Api,
  type V1MutatingWebhookConfiguration,
  type V1ValidatingWebhookConfiguration,
} from "@kubernetes/client-node";
import type { Logger } from "pino";
import { kubeErrorMessage, statusCode } from "../src/kube/errors.js";
import { generateCa, issueCert, type Pem } from "./pki.js";
import { secretToState, stateToSecret } from "./secret.js";
import { certificateWindow, coversNames, nextCertStep, type CertPolicy, type CertState } from "./state.js";

const JSON_PATCH = setHeaderOptions("Content-Type", "application/json-patch+json");

export interface CertManagerOptions {
  namespace: string;
  secretName: string;
  serviceName: string;
  /** --webhook.tls.san: extra DNS names or IPs (e.g. 127.0.0.1 for a local API server). */
  extraSans: readonly string[];
  validatingWebhookConfiguration: string;
  mutatingWebhookConfiguration: string;
  policy: CertPolicy;
  now?: () => number;
}

export interface CertManagerDeps {
  core: CoreV1Api;
  admission: AdmissionregistrationV1Api;
  log: Logger;
  /** Leadership check: a replica that lost the Lease stops writing at once. */
  canWrite: () => boolean;
  /** A rotation step was written (its kind, and why when it says). */
  onRotation?: (step: string, reason: string | undefined) => void;
}

/** DNS names a serving certificate for the webhook Service must carry. */
export function serviceNames(serviceName: string, namespace: string): string[] {
  return [serviceName, `${serviceName}.${namespace}`, `${serviceName}.${namespace}.svc`, `${serviceName}.${namespace}.svc.cluster.local`];
}

/**
 * The leader's certificate duties: keep one Secret with a CA and serving certificate, rotate them
 * ahead of expiry one safe step at a time, and keep the caBundle of both webhook configurations
 * equal to the CAs in the Secret. Two leaders racing on creation end with one Secret (create is
 * atomic; the loser re-reads); updates carry the resourceVersion they were planned on.
 */
export class CertManager {
  private readonly now: () => number;

  constructor(
    private readonly options: CertManagerOptions,
    private readonly deps: CertManagerDeps,
  ) {
    this.now = options.now ?? Date.now;
  }

  private get sans(): { dnsNames: string[]; ipAddresses: string[] } {
    const names = [...serviceNames(this.options.serviceName, this.options.namespace), ...this.options.extraSans];
    return { dnsNames: [...new Set(names.filter((name) => isIP(name) === 0))], ipAddresses: [...new Set(names.filter((name) => isIP(name) !== 0))] };
  }

  /** One pass: advance the life cycle by at most one step, then make both caBundles right. */
  async reconcile(): Promise<CertState | undefined> {
    const { state, resourceVersion } = await this.readSecret();
    const required = [...this.sans.dnsNames, ...this.sans.ipAddresses];
    const step = nextCertStep(state, this.now(), this.options.policy, (leaf) => coversNames(leaf, required));
    let current = state;
    if (step.kind !== "none" && this.deps.canWrite()) {
      const next = await this.apply(step, state);
      // Generating keys takes a while: the Lease may have been lost meanwhile, and a replica that
      // lost it writes nothing.
      if (next && this.deps.canWrite()) {
        const written = await this.writeSecret(next, resourceVersion);
        if (written) {
          current = next;
          this.deps.log.info(
            {
              step: step.kind,
              ...("reason" in step ? { reason: step.reason } : {}),
              notAfter: new Date(certificateWindow(next.leaf.cert).notAfter).toISOString(),
            },
            "webhook certificates updated",
          );
          if (step.kind !== "create") this.deps.onRotation?.(step.kind, "reason" in step ? step.reason : undefined);
        } else {
          current = (await this.readSecret()).state;
        }
      }
    }
    if (current && this.deps.canWrite()) await this.injectCaBundle(current.bundle.join("\n"));
    return current;
  }

  private async apply(step: Exclude<ReturnType<typeof nextCertStep>, { kind: "none" }>, state: CertState | undefined): Promise<CertState | undefined> {
    const now = this.now();
    const policy = this.options.policy;
    switch (step.kind) {
      case "create": {
        const ca = await generateCa(`azure-msi-operator webhook CA ${new Date(now).toISOString()}`, policy.caValidityMs);
        return { ca, leaf: await this.issueLeaf(ca), bundle: [ca.cert], bundleChangedAt: now, leafChangedAt: now };
      }
      case "stage-next-ca": {
        const next = await generateCa(`azure-msi-operator webhook CA ${new Date(now).toISOString()}`, policy.caValidityMs);
        return { ...state!, next, bundle: [...state!.bundle, next.cert], bundleChangedAt: now };
      }
      case "promote-next-ca": {
        const ca = state!.next!;
        return { ca, leaf: await this.issueLeaf(ca), bundle: state!.bundle, bundleChangedAt: state!.bundleChangedAt, leafChangedAt: now };
      }
      case "rotate-leaf":
        return { ...state!, leaf: await this.issueLeaf(state!.ca), leafChangedAt: now };
      case "trim-bundle":
        return { ...state!, bundle: step.keep, bundleChangedAt: now };
    }
  }

  private issueLeaf(ca: Pem): Promise<Pem> {
    const { dnsNames, ipAddresses } = this.sans;
    return issueCert(ca, {
      commonName: `${this.options.serviceName}.${this.options.namespace}.svc`,
      dnsNames,
      ipAddresses,
      usage: "server",
      validityMs: this.options.policy.leafValidityMs,
    });
  }

  private async readSecret(): Promise<{ state: CertState | undefined; resourceVersion: string | undefined }> {
    try {
      const secret = await this.deps.core.readNamespacedSecret({ name: this.options.secretName, namespace: this.options.namespace });
      const parsed = secretToState(secret);
      if (!parsed.ok) {
        // A broken Secret is replaced as a whole rather than half-trusted.
        this.deps.log.error({ secret: this.options.secretName, problem: parsed.error }, "webhook certificate Secret is unusable; replacing it");
        return { state: undefined, resourceVersion: secret.metadata?.resourceVersion };
      }
      return { state: parsed.state, resourceVersion: secret.metadata?.resourceVersion };
    } catch (error) {
      if (statusCode(error) === 404) return { state: undefined, resourceVersion: undefined };
      throw error;
    }
  }

  /** Create, or update at the resourceVersion the step was planned on; false when another writer won. */
  private async writeSecret(state: CertState, resourceVersion: string | undefined): Promise<boolean> {
    const { namespace, secretName } = this.options;
    try {
      if (resourceVersion === undefined) await this.deps.core.createNamespacedSecret({ namespace, body: stateToSecret(secretName, namespace, state) });
      else await this.deps.core.replaceNamespacedSecret({ name: secretName, namespace, body: stateToSecret(secretName, namespace, state, resourceVersion) });
      return true;
    } catch (error) {
      if (statusCode(error) === 409) return false;
      throw error;
    }
  }

  /** Sets every webhook's caBundle in both configurations, with a JSON patch guarded by resourceVersion. */
  async injectCaBundle(bundle: string): Promise<void> {
    const encoded = Buffer.from(bundle).toString("base64");
    const { admission } = this.deps;
    const targets: [string, () => Promise<V1ValidatingWebhookConfiguration | V1MutatingWebhookConfiguration>, (body: object) => Promise<unknown>][] = [
      [
        this.options.validatingWebhookConfiguration,
        () => admission.readValidatingWebhookConfiguration({ name: this.options.validatingWebhookConfiguration }),
        (body) => admission.patchValidatingWebhookConfiguration({ name: this.options.validatingWebhookConfiguration, body }, JSON_PATCH),
      ],
      [
        this.options.mutatingWebhookConfiguration,
        () => admission.readMutatingWebhookConfiguration({ name: this.options.mutatingWebhookConfiguration }),
        (body) => admission.patchMutatingWebhookConfiguration({ name: this.options.mutatingWebhookConfiguration, body }, JSON_PATCH),
      ],
    ];
    for (const [name, read, patch] of targets) {
      try {
        const config = await read();
        const ops = (config.webhooks ?? []).flatMap((webhook, index) =>
          webhook.clientConfig.caBundle === encoded
            ? []
            : [{ op: webhook.clientConfig.caBundle === undefined ? "add" : "replace", path: `/webhooks/${index}/clientConfig/caBundle`, value: encoded }],
        );
        if (ops.length === 0) continue;
        await patch([{ op: "test", path: "/metadata/resourceVersion", value: config.metadata?.resourceVersion }, ...ops]);
        this.deps.log.info({ webhookConfiguration: name, webhooks: ops.length }, "caBundle injected");
      } catch (error) {
        const status = statusCode(error);
        if (status === 404) this.deps.log.warn({ webhookConfiguration: name }, "webhook configuration not found: caBundle not injected");
        else if (status === 409 || status === 422)
          this.deps.log.info({ webhookConfiguration: name }, "webhook configuration changed meanwhile; caBundle injection retried next pass");
        else this.deps.log.error({ webhookConfiguration: name, err: kubeErrorMessage(error) }, "caBundle injection failed");
      }
    }
  }
}
