import { AdmissionregistrationV1Api, loadAllYaml, type KubernetesObject } from "@kubernetes/client-node";
import type { ControlPlane } from "../controlplane/controlplane.js";
import { eventually } from "./operator.js";
import { webhookConfigurationsFor } from "./manifests.js";

/**
 * Installs the shipped webhook configurations pointed at https://127.0.0.1:port (the caBundle comes
 * from the operator): manifests/base/webhooks.yaml, or with `overlay` (a kustomization directory)
 * the configurations `kubectl kustomize` renders there.
 */
export async function installWebhooks(plane: ControlPlane, port: number, options: { overlay?: string } = {}): Promise<KubernetesObject[]> {
  const rendered = options.overlay ? await webhookConfigurationsOf(plane, options.overlay) : undefined;
  const objects = await webhookConfigurationsFor(`https://127.0.0.1:${port}`, rendered);
  await plane.kubectlOrThrow("admin", ["apply", "-f", "-"], { stdin: JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }) });
  return objects;
}

/** What `kubectl kustomize <dir>` renders: every object, parsed. */
export async function kustomize(plane: ControlPlane, dir: string): Promise<KubernetesObject[]> {
  return loadAllYaml(await plane.kubectlOrThrow("admin", ["kustomize", dir])) as KubernetesObject[];
}

async function webhookConfigurationsOf(plane: ControlPlane, dir: string): Promise<KubernetesObject[]> {
  const objects = (await kustomize(plane, dir)).filter((object) => /^(Validating|Mutating)WebhookConfiguration$/.test(object.kind ?? ""));
  if (objects.length !== 2) throw new Error(`${dir}: expected one validating and one mutating webhook configuration, got ${objects.length}`);
  return objects;
}

/** Waits until both configurations carry a caBundle (the leader injected it). */
export async function waitForCaBundles(plane: ControlPlane, timeoutMs = 20_000): Promise<string> {
  const admission = plane.api("admin", AdmissionregistrationV1Api);
  return eventually(
    async () => {
      const validating = await admission.readValidatingWebhookConfiguration({ name: "azure-msi-operator" });
      const mutating = await admission.readMutatingWebhookConfiguration({ name: "azure-msi-operator" });
      const a = validating.webhooks?.[0]?.clientConfig.caBundle;
      const b = mutating.webhooks?.[0]?.clientConfig.caBundle;
      return a && a === b ? a : undefined;
    },
    timeoutMs,
    "caBundle injected",
  );
}

/** Points the mutating webhook at another port (e.g. a second replica). */
export async function repointMutating(plane: ControlPlane, port: number): Promise<void> {
  await plane.kubectlOrThrow("admin", [
    "patch",
    "mutatingwebhookconfiguration",
    "azure-msi-operator",
    "--type=json",
    "-p",
    JSON.stringify([{ op: "replace", path: "/webhooks/0/clientConfig/url", value: `https://127.0.0.1:${port}/mutate/azureidentitybinding` }]),
  ]);
}
