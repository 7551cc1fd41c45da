import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { environmentFromName, isKnownAuthorityHost, parseEnvironmentFile, resolveEnvironment } from "./environment.js";

test("built-in clouds by go-autorest name, case-insensitively, with their ARM scope and authority host", () => {
  const publicCloud = environmentFromName("AzurePublicCloud");
  assert.equal(publicCloud.resourceManagerEndpoint, "https://management.azure.com");
  assert.equal(publicCloud.activeDirectoryEndpoint, "https://login.microsoftonline.com");
  assert.equal(publicCloud.scope, "https://management.azure.com/.default");
  assert.equal(environmentFromName("azurepubliccloud"), publicCloud);
  assert.equal(environmentFromName("AZURECLOUD"), publicCloud);

  const china = environmentFromName("AZURECHINACLOUD");
  assert.equal(china.resourceManagerEndpoint, "https://management.chinacloudapi.cn");
  assert.equal(china.activeDirectoryEndpoint, "https://login.chinacloudapi.cn");
  assert.equal(china.scope, "https://management.chinacloudapi.cn/.default");

  const usGov = environmentFromName(" AzureUSGovernmentCloud ");
  assert.equal(usGov.resourceManagerEndpoint, "https://management.usgovcloudapi.net");
  assert.equal(usGov.activeDirectoryEndpoint, "https://login.microsoftonline.us");
  assert.equal(usGov.scope, "https://management.usgovcloudapi.net/.default");
  assert.equal(environmentFromName("AZUREUSGOVERNMENT"), usGov);
});

test("an unknown cloud name is an error that lists the known ones and the file alternative", () => {
  assert.throws(
    () => environmentFromName("AzureGermanCloud"),
    /unknown Azure environment "AzureGermanCloud": use one of AZUREPUBLICCLOUD, AZURECHINACLOUD, AZUREUSGOVERNMENTCLOUD, or set AZURE_ENVIRONMENT_FILEPATH/,
  );
});

test("only the built-in clouds' authority hosts count as known to MSAL", () => {
  assert.equal(isKnownAuthorityHost("https://login.microsoftonline.com/"), true);
  assert.equal(isKnownAuthorityHost("https://LOGIN.chinacloudapi.cn"), true);
  assert.equal(isKnownAuthorityHost("https://login.microsoftonline.us"), true);
  assert.equal(isKnownAuthorityHost("https://127.0.0.1:8443/"), false);
  assert.equal(isKnownAuthorityHost("https://adfs.local.azurestack.external/adfs"), false);
});

const STACK = {
  name: "AzureStackCloud",
  managementPortalURL: "https://portal.local.azurestack.external/",
  resourceManagerEndpoint: "https://management.local.azurestack.external/",
  activeDirectoryEndpoint: "https://login.microsoftonline.com/",
  serviceManagementEndpoint: "https://management.azurestackci04.onmicrosoft.com/3ee899a5",
  tokenAudience: "https://management.azurestackci04.onmicrosoft.com/3ee899a5",
  storageEndpointSuffix: "local.azurestack.external",
  resourceIdentifiers: { graph: "https://graph.windows.net/" },
};

test("a go-autorest environment file: endpoints without trailing slash, scope from tokenAudience, other fields ignored", () => {
  const environment = parseEnvironmentFile(JSON.stringify(STACK), "/etc/azure/stack.json");
  assert.deepEqual(environment, {
    name: "AzureStackCloud",
    resourceManagerEndpoint: "https://management.local.azurestack.external",
    activeDirectoryEndpoint: "https://login.microsoftonline.com",
    tokenAudience: "https://management.azurestackci04.onmicrosoft.com/3ee899a5",
    scope: "https://management.azurestackci04.onmicrosoft.com/3ee899a5/.default",
    source: { file: "/etc/azure/stack.json" },
  });
});

test("without tokenAudience the scope is the Resource Manager endpoint's; without name it is a custom cloud", () => {
  const environment = parseEnvironmentFile(
    JSON.stringify({ resourceManagerEndpoint: "https://arm.example:8443/", activeDirectoryEndpoint: "https://login.example/adfs/" }),
    "env.json",
  );
  assert.equal(environment.scope, "https://arm.example:8443/.default");
  assert.equal(environment.activeDirectoryEndpoint, "https://login.example/adfs");
  assert.equal(environment.name, "AzureCustomCloud");
});

test("a bad environment file fails with the file and the field in the message", () => {
  const bad = (text: string) => () => parseEnvironmentFile(text, "/x/env.json");
  assert.throws(bad("{ nope"), /^Error: Azure environment file \/x\/env\.json: invalid JSON \(/);
  assert.throws(bad("[]"), /Azure environment file \/x\/env\.json: expected a JSON object/);
  assert.throws(
    bad(JSON.stringify({ activeDirectoryEndpoint: "https://login.example" })),
    /Azure environment file \/x\/env\.json: field "resourceManagerEndpoint" is missing/,
  );
  assert.throws(bad(JSON.stringify({ resourceManagerEndpoint: "https://arm.example" })), /field "activeDirectoryEndpoint" is missing/);
  assert.throws(
    bad(JSON.stringify({ resourceManagerEndpoint: "http://arm.example", activeDirectoryEndpoint: "https://login.example" })),
    /field "resourceManagerEndpoint" must be an https URL, got "http:\/\/arm\.example"/,
  );
  assert.throws(
    bad(JSON.stringify({ resourceManagerEndpoint: "arm.example", activeDirectoryEndpoint: "https://login.example" })),
    /field "resourceManagerEndpoint" is not a URL: "arm\.example"/,
  );
  assert.throws(
    bad(JSON.stringify({ resourceManagerEndpoint: "https://arm.example", activeDirectoryEndpoint: 42 })),
    /field "activeDirectoryEndpoint" must be a string, got 42/,
  );
});

test("resolveEnvironment: the file named by AZURE_ENVIRONMENT_FILEPATH wins over the name; else the name", async () => {
  const dir = await mkdtemp(join(tmpdir(), "azure-env-"));
  try {
    const path = join(dir, "env.json");
    await writeFile(path, JSON.stringify(STACK));
    const fromFile = await resolveEnvironment("AZUREPUBLICCLOUD", { AZURE_ENVIRONMENT_FILEPATH: path });
    assert.equal(fromFile.resourceManagerEndpoint, "https://management.local.azurestack.external");
    assert.deepEqual(fromFile.source, { file: path });
    assert.equal((await resolveEnvironment("AzureChinaCloud", { AZURE_ENVIRONMENT_FILEPATH: "" })).name, "AzureChinaCloud");
    await assert.rejects(
      resolveEnvironment("AZUREPUBLICCLOUD", { AZURE_ENVIRONMENT_FILEPATH: join(dir, "missing.json") }),
      /Azure environment file .*missing\.json \(from AZURE_ENVIRONMENT_FILEPATH\): ENOENT/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
