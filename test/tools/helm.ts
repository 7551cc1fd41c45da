import { goToolBinary, type GoTool, type GoToolOptions } from "./gotool.js";

const HELM_VERSION = "v3.22.0";
// The k8s.io/client-go helm.sh/helm/v3 v3.22.0 requires (v0.37.0), as Kubernetes 1.37: what helm's
// Makefile derives from go.mod. Without it `helm template` and `helm lint` assume Kubernetes 1.20.
const HELM_KUBERNETES = { major: "1", minor: "37" };

/**
 * `helm` installs, upgrades, lints and renders charts/azure-msi-operator in test/chart*.test.ts and
 * renders manifests/base/ in tools/manifests.ts.
 */
export const HELM: GoTool = {
  name: "helm",
  module: "helm.sh/helm/v3",
  version: HELM_VERSION,
  package: "./cmd/helm",
  // What helm's release build (its Makefile) stamps, so `helm version` names the release instead of
  // "v3.22+unreleased", and the default Kubernetes version is the one it was built against.
  stamp: {
    "helm.sh/helm/v3/internal/version.version": HELM_VERSION,
    "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor": HELM_KUBERNETES.major,
    "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor": HELM_KUBERNETES.minor,
    "helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor": HELM_KUBERNETES.major,
    "helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor": HELM_KUBERNETES.minor,
  },
  override: "TEST_ASSET_HELM",
};

/** TEST_ASSET_HELM, else the pinned helm from the cache (built on first use). */
export function helmBinary(options?: GoToolOptions): Promise<string> {
  return goToolBinary(HELM, options);
}
