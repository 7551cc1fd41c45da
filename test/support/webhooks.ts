import { AdmissionregistrationV1Api, type KubernetesObject } from "@kubernetes/client-node";
import type { ControlPlane } from "../controlplane/controlplane.js";
import { eventually } from "./operator.js";
import { webhookConfigurationsFor } from "./manifests.js";

/** Installs manifests/webhooks.yaml pointed at https://127.0.0.1:port (the caBundle comes from the operator). */
export async function installWebhooks(plane: ControlPlane, port: number): Promise<KubernetesObject[]> {
  const objects = await webhookConfigurationsFor(`https://127.0.0.1:${port}`);
  await plane.kubectlOrThrow("admin", ["apply", "-f", "-"], { stdin: JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }) });
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
