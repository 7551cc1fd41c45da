import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { loadAllYaml, type KubernetesObject, type V1Deployment } from "@kubernetes/client-node";
import { OPERATOR_NAMESPACE } from "../controlplane/controlplane.js";

export const MANIFESTS_ROOT = fileURLToPath(new URL("../../manifests/", import.meta.url));
/** The operator's objects (`kubectl apply -k manifests/` builds on this directory). */
export const MANIFESTS_DIR = `${MANIFESTS_ROOT}base/`;

export async function loadManifest(file: string): Promise<KubernetesObject[]> {
  return loadAllYaml(await readFile(`${MANIFESTS_DIR}${file}`, "utf8")) as KubernetesObject[];
}

interface WebhookEntry {
  clientConfig: { service?: { path?: string }; url?: string; caBundle?: string };
}

/**
 * The shipped webhook configurations with each Service reference replaced by a URL on 127.0.0.1,
 * which is how a local API server reaches an operator running outside the cluster.
 */
export async function webhookConfigurationsFor(baseUrl: string): Promise<KubernetesObject[]> {
  const objects = await loadManifest("webhooks.yaml");
  for (const object of objects) {
    for (const webhook of (object as KubernetesObject & { webhooks?: WebhookEntry[] }).webhooks ?? []) {
      const path = webhook.clientConfig.service?.path ?? "/";
      webhook.clientConfig = { url: `${baseUrl}${path}` };
    }
  }
  return objects;
}

/** Env of the Deployment's container as the pod would see it, downward API values filled in. */
export function podEnv(deployment: V1Deployment, pod = "azure-msi-operator-abc12"): Record<string, string> {
  const fieldValues: Record<string, string> = { "spec.nodeName": "node-1", "metadata.namespace": OPERATOR_NAMESPACE, "metadata.name": pod };
  const env: Record<string, string> = {};
  for (const variable of deployment.spec?.template.spec?.containers[0]?.env ?? []) {
    const path = variable.valueFrom?.fieldRef?.fieldPath;
    env[variable.name] = path ? (fieldValues[path] ?? "") : (variable.value ?? "");
  }
  return env;
}

/** The shipped Deployment's env, as the pod named `pod` sees it. */
export async function shippedEnv(pod: string): Promise<Record<string, string>> {
  const deployment = (await loadManifest("deployment.yaml")).find((object) => object.kind === "Deployment") as V1Deployment;
  return podEnv(deployment, pod);
}
