import { test } from "node:test";
import assert from "node:assert/strict";
import type { Server } from "node:net";
import { isAddressInUse, listenOn, PortAllocator, portOf, withFreshPorts } from "./ports.js";

/**
 * The kernel as it behaved on the machine where etcd got kube-apiserver's port: a port just released
 * is handed out again by the next bind to :0. Real sockets throughout; only the order is scripted.
 */
function repeatingKernel(): { listen: () => Promise<Server>; offered: number[] } {
  const offered: number[] = [];
  const listen = async () => {
    const last = offered.at(-1);
    // Every second bind offers the previous port again, if nothing holds it.
    const server = last !== undefined && offered.length % 2 === 1 ? await listenOn(last).catch(() => listenOn(0)) : await listenOn(0);
    offered.push(portOf(server));
    return server;
  };
  return { listen, offered };
}

test("a port the kernel offers again is never handed out twice", async () => {
  const kernel = repeatingKernel();
  const allocator = new PortAllocator(kernel.listen);
  const handed = await allocator.reserveMany(6);
  assert.equal(new Set(handed).size, handed.length, `duplicates in ${handed.join(", ")}`);
  // The scenario happened: the kernel did offer a handed-out port again (else this test proves nothing).
  assert.ok(kernel.offered.length > handed.length, `the kernel repeated itself: offered ${kernel.offered.join(", ")}`);
});

test("with the real kernel, many reservations in a row are all distinct and were free", async () => {
  const allocator = new PortAllocator();
  const handed = await allocator.reserveMany(50);
  assert.equal(new Set(handed).size, 50);
  for (const port of handed.slice(0, 5)) {
    const server = await listenOn(port);
    await new Promise((resolve) => server.close(resolve));
  }
});

test("a boot that finds its port taken (EADDRINUSE) is retried with fresh ports", async () => {
  const allocator = new PortAllocator();
  const thieves: Server[] = [];
  const tried: number[][] = [];
  try {
    const result = await withFreshPorts(
      2,
      async (ports, attempt) => {
        tried.push(ports);
        // Another process binds the first port between our reservation and the boot.
        if (attempt === 1) thieves.push(await listenOn(ports[0]!));
        const servers = [];
        try {
          for (const port of ports) servers.push(await listenOn(port));
        } catch (error) {
          await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
          throw error;
        }
        return servers;
      },
      { allocator },
    );
    assert.equal(tried.length, 2, "booted twice");
    assert.deepEqual(
      result.map((server) => portOf(server)),
      tried[1],
    );
    assert.equal(new Set(tried.flat()).size, 4, "the retry used ports never tried before");
    await Promise.all(result.map((server) => new Promise((resolve) => server.close(resolve))));
  } finally {
    await Promise.all(thieves.map((server) => new Promise((resolve) => server.close(resolve))));
  }
});

test("only address-in-use failures are retried, and only a few times", async () => {
  let boots = 0;
  await assert.rejects(
    withFreshPorts(1, async () => {
      boots++;
      throw new Error("etcd exited with 1");
    }),
    /etcd exited/,
  );
  assert.equal(boots, 1);
  boots = 0;
  await assert.rejects(
    withFreshPorts(
      1,
      async () => {
        boots++;
        throw new Error("listen tcp 127.0.0.1:2380: bind: address already in use");
      },
      { attempts: 3 },
    ),
    /address already in use/,
  );
  assert.equal(boots, 3);
});

test("isAddressInUse reads Go's message, Node's code and causes", () => {
  assert.ok(isAddressInUse(new Error("failed to create listener: listen tcp 127.0.0.1:6443: bind: address already in use")));
  assert.ok(isAddressInUse(Object.assign(new Error("listen EADDRINUSE"), { code: "EADDRINUSE" })));
  assert.ok(isAddressInUse(new Error("control plane failed", { cause: new Error("bind: address already in use") })));
  assert.ok(!isAddressInUse(new Error("connection refused")));
  assert.ok(!isAddressInUse("address already in use"));
});
