import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { loadAllYaml, type KubernetesObject } from "@kubernetes/client-node";

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
