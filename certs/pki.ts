import type * as selfsigned from "selfsigned";

// selfsigned (with its X.509 and ASN.1 libraries) is ~20 MiB resident once loaded, and only a leader
// that creates or rotates a certificate needs it: it is imported when a key is generated (once; the
// module cache keeps it).
type Selfsigned = typeof selfsigned;

async function selfsignedGenerate(): Promise<Selfsigned["generate"]> {
  const loaded = (await import("selfsigned")) as Selfsigned & { default?: Selfsigned };
  // Node's loader finds this CommonJS package's named exports; in the esbuild bundle, a dynamic
  // import() of it has only `default` (module.exports).
  return loaded.default?.generate ?? loaded.generate;
}

/** A PEM certificate and its PEM private key. */
export interface Pem {
  cert: string;
  key: string;
}

/** Valid a little before now, for peers whose clock is behind; small next to the validity itself. */
function backdateMs(validityMs: number): number {
  return Math.min(60_000, Math.floor(validityMs / 10));
}

export async function generateCa(commonName: string, validityMs: number): Promise<Pem> {
  const now = new Date();
  const generate = await selfsignedGenerate();
  const pems = await generate([{ name: "commonName", value: commonName }], {
    keySize: 2048,
    algorithm: "sha256",
    notBeforeDate: new Date(now.getTime() - backdateMs(validityMs)),
    notAfterDate: new Date(now.getTime() + validityMs),
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

export interface LeafOptions {
  commonName: string;
  organizations?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: "server" | "client";
  validityMs: number;
}

/** A leaf certificate signed by `ca`: a serving cert for a local server or a client cert for a user. */
export async function issueCert(ca: Pem, options: LeafOptions): Promise<Pem> {
  const now = new Date();
  const subject = [{ name: "commonName", value: options.commonName }, ...(options.organizations ?? []).map((value) => ({ name: "organizationName", value }))];
  const altNames = [
    ...(options.dnsNames ?? []).map((value) => ({ type: 2 as const, value })),
    ...(options.ipAddresses ?? []).map((ip) => ({ type: 7 as const, ip })),
  ];
  const generate = await selfsignedGenerate();
  const pems = await generate(subject, {
    keySize: 2048,
    algorithm: "sha256",
    notBeforeDate: new Date(now.getTime() - backdateMs(options.validityMs)),
    notAfterDate: new Date(now.getTime() + options.validityMs),
    ca: { key: ca.key, cert: ca.cert },
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
      { name: "extKeyUsage", serverAuth: options.usage === "server", clientAuth: options.usage === "client" },
      ...(altNames.length > 0 ? [{ name: "subjectAltName" as const, altNames }] : []),
    ],
  });
  return { cert: pems.cert, key: pems.private };
}
