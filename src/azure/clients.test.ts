import { test } from "node:test";
import assert from "node:assert/strict";
import type { AccessToken, TokenCredential } from "@azure/identity";
import { abortableCredential } from "./clients.js";

/** A credential whose token never comes until the test says so (as with Entra black-holed). */
function heldCredential(): { credential: TokenCredential; answer: (token: AccessToken) => void } {
  let answer: (token: AccessToken) => void = () => undefined;
  const held = new Promise<AccessToken>((resolve) => (answer = resolve));
  return { credential: { getToken: () => held }, answer };
}

test("abortableCredential: an abort ends the wait for a token that never comes", async () => {
  const { credential } = heldCredential();
  const abort = new AbortController();
  const waiting = abortableCredential(credential).getToken("scope", { abortSignal: abort.signal });
  abort.abort();
  await assert.rejects(waiting, /token request abandoned/);
});

test("abortableCredential: an already aborted signal fails at once; without a signal the token is the credential's", async () => {
  const { credential, answer } = heldCredential();
  await assert.rejects(abortableCredential(credential).getToken("scope", { abortSignal: AbortSignal.abort() }), /token request abandoned/);
  const token = { token: "t", expiresOnTimestamp: 1 };
  const plain = abortableCredential(credential).getToken("scope");
  answer(token);
  assert.equal(await plain, token);
  const withSignal = abortableCredential(credential).getToken("scope", { abortSignal: new AbortController().signal });
  assert.equal(await withSignal, token);
});
