// The release's software bill of materials: an SPDX 2.3 JSON document of the packages the bundle is
// made of. Which packages went in is what esbuild read (its metafile); their versions, licenses and
// digests are package-lock.json's. Written here because what is wanted is narrow (the bundled
// packages, not every installed one, as `npm sbom` would list), and the format is a few fields.
import { createHash } from "node:crypto";
import type { Metafile } from "esbuild";

interface LockEntry {
  name?: string;
  version?: string;
  resolved?: string;
  integrity?: string;
  license?: string;
  dev?: boolean;
}

export interface PackageLock {
  packages: Record<string, LockEntry>;
}

export interface BundledPackage {
  name: string;
  version: string;
  /** Its package-lock.json key, e.g. node_modules/@azure/identity. */
  path: string;
  license: string | undefined;
  integrity: string | undefined;
  resolved: string | undefined;
}

/** Every package esbuild took files from, with package-lock.json's data; sorted by name and version. */
export function bundledPackages(metafile: Metafile, lock: PackageLock): BundledPackage[] {
  const paths = new Set<string>();
  for (const input of Object.keys(metafile.inputs)) {
    // From the first node_modules/ on, as package-lock.json keys it (the path before it may be a
    // symlinked node_modules' real location); the innermost <name> or @scope/name holds the file.
    const path = input.replace(/\\/g, "/");
    const from = path.indexOf("node_modules/");
    const match = from < 0 ? null : /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(path.slice(from));
    if (match) paths.add(match[1]!);
  }
  return [...paths]
    .map((path) => {
      const entry = lock.packages[path];
      if (!entry?.version) throw new Error(`${path} is in the bundle but not in package-lock.json: run npm ci`);
      const name = entry.name ?? path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length);
      return { name, version: entry.version, path, license: entry.license, integrity: entry.integrity, resolved: entry.resolved };
    })
    .sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version));
}

export interface SbomSubject {
  name: string;
  version: string;
  license: string;
  revision: string;
  /** The repository's git URL (package.json repository.url). */
  repository: string;
  /** When the described build's sources were made (the commit time), so the document is reproducible. */
  created: Date;
}

const purl = (name: string, version: string) => `pkg:npm/${name.startsWith("@") ? `%40${name.slice(1)}` : name}@${version}`;
const spdxId = (name: string, version: string) => `SPDXRef-Package-npm-${`${name}-${version}`.replace(/[^A-Za-z0-9.-]/g, "-")}`;
/** A license expression SPDX accepts as is; anything else (a URL, "SEE LICENSE IN ...") is NOASSERTION. */
const licenseOf = (license: string | undefined) =>
  license && /^\(?[A-Za-z0-9.+-]+(\s+(AND|OR|WITH)\s+\(?[A-Za-z0-9.+-]+\)?)*\)?$/.test(license) ? license : "NOASSERTION";

function checksums(integrity: string | undefined): { algorithm: string; checksumValue: string }[] {
  const match = /^(sha512|sha384|sha256|sha1)-([A-Za-z0-9+/=]+)$/.exec(integrity ?? "");
  return match ? [{ algorithm: match[1]!.toUpperCase(), checksumValue: Buffer.from(match[2]!, "base64").toString("hex") }] : [];
}

export function spdxDocument(subject: SbomSubject, packages: readonly BundledPackage[]): Record<string, unknown> {
  const root = `SPDXRef-Package-${subject.name}`;
  const digest = createHash("sha256")
    .update(JSON.stringify([subject.name, subject.version, subject.revision, packages.map((p) => [p.name, p.version, p.integrity])]))
    .digest("hex");
  return {
    spdxVersion: "SPDX-2.3",
    dataLicense: "CC0-1.0",
    SPDXID: "SPDXRef-DOCUMENT",
    name: `${subject.name}-${subject.version}`,
    documentNamespace: `https://spdx.org/spdxdocs/${subject.name}-${subject.version}-${digest.slice(0, 32)}`,
    creationInfo: {
      created: subject.created.toISOString().replace(/\.\d{3}Z$/, "Z"),
      creators: [`Tool: ${subject.name}-tools-sbom`, `Organization: ${subject.name} authors`],
    },
    packages: [
      {
        SPDXID: root,
        name: subject.name,
        versionInfo: subject.version,
        downloadLocation: `git+${subject.repository.replace(/^git\+/, "")}@${subject.revision.replace(/-dirty$/, "")}`,
        filesAnalyzed: false,
        licenseConcluded: subject.license,
        licenseDeclared: subject.license,
        copyrightText: "NOASSERTION",
        primaryPackagePurpose: "APPLICATION",
        externalRefs: [{ referenceCategory: "PACKAGE-MANAGER", referenceType: "purl", referenceLocator: purl(subject.name, subject.version) }],
      },
      ...packages.map((pkg) => ({
        SPDXID: spdxId(pkg.name, pkg.version),
        name: pkg.name,
        versionInfo: pkg.version,
        downloadLocation: pkg.resolved ?? "NOASSERTION",
        filesAnalyzed: false,
        licenseConcluded: "NOASSERTION",
        licenseDeclared: licenseOf(pkg.license),
        copyrightText: "NOASSERTION",
        primaryPackagePurpose: "LIBRARY",
        checksums: checksums(pkg.integrity),
        externalRefs: [{ referenceCategory: "PACKAGE-MANAGER", referenceType: "purl", referenceLocator: purl(pkg.name, pkg.version) }],
      })),
    ],
    relationships: [
      { spdxElementId: "SPDXRef-DOCUMENT", relationshipType: "DESCRIBES", relatedSpdxElement: root },
      ...packages.map((pkg) => ({ spdxElementId: root, relationshipType: "CONTAINS", relatedSpdxElement: spdxId(pkg.name, pkg.version) })),
    ],
  };
}
