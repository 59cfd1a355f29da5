/** The Windows path poller's comparison: what counts as a change of the way to the server. */
import { assertEquals } from "../../../tests/support/assert.ts";
import type { FoundRoute } from "./windows_lookup.ts";
import { PathPoller, samePath } from "./windows_watch.ts";

const wifi: FoundRoute = {
  ifIndex: 14,
  alias: "Wi-Fi",
  nextHop: "192.168.1.1",
  source: "192.168.1.20",
};
const lte: FoundRoute = {
  ifIndex: 22,
  alias: "Cellular",
  nextHop: "10.64.0.1",
  source: "10.64.3.9",
};

Deno.test("samePath() compares interface, next hop and source, not the alias", () => {
  assertEquals(samePath(wifi, { ...wifi, alias: "WLAN" }), true);
  assertEquals(samePath(wifi, { ...wifi, source: "192.168.1.21" }), false); // new DHCP lease
  assertEquals(samePath(wifi, { ...wifi, nextHop: undefined }), false);
  assertEquals(samePath(wifi, lte), false);
  assertEquals(samePath(undefined, undefined), true);
  assertEquals(samePath(wifi, undefined), false);
});

Deno.test("PathPoller reports each change once, and ignores failed lookups", () => {
  const p = new PathPoller("xvpn0", wifi);
  assertEquals(p.observe({ ...wifi }), undefined);
  assertEquals(p.observe("error"), undefined); // PowerShell hiccup: not a network change
  assertEquals(p.observe(undefined), { before: wifi, after: undefined, throughTunnel: false });
  assertEquals(p.observe(undefined), undefined);
  assertEquals(p.observe(lte), { before: undefined, after: lte, throughTunnel: false });
  assertEquals(p.current, lte);
});

Deno.test("PathPoller flags a way through the tunnel itself (the host route is gone)", () => {
  const p = new PathPoller("xvpn0", wifi);
  const tun: FoundRoute = { ifIndex: 31, alias: "xvpn0", source: "10.7.0.2" };
  assertEquals(p.observe(tun), { before: wifi, after: tun, throughTunnel: true });
});

Deno.test("PathPoller without a starting point takes the first answer as it", () => {
  const p = new PathPoller("xvpn0");
  assertEquals(p.observe("error"), undefined);
  assertEquals(p.observe(wifi), undefined);
  assertEquals(p.observe(lte)?.before, wifi);
});
