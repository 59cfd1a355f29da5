import { assertEquals, assertThrows } from "../../../tests/support/assert.ts";
import { parseCidr } from "../../lib/ip.ts";
import {
  natTableName,
  planNat6Disable,
  planNat6Enable,
  planNatDisable,
  planNatEnable,
} from "./plan.ts";

const pool = parseCidr("10.7.0.1/24")!; // host bits are cleared in the rule

Deno.test("planNatEnable() adds our own masquerade table, then turns forwarding on", () => {
  assertEquals(planNatEnable({ tag: "xvpn0", pool, outIface: "eth0" }), [
    [
      "nft",
      "add table ip xvpn_nat_xvpn0; delete table ip xvpn_nat_xvpn0; add table ip xvpn_nat_xvpn0 " +
      "{ chain postrouting { type nat hook postrouting priority 100; policy accept; " +
      'ip saddr 10.7.0.0/24 oifname "eth0" masquerade; }; }',
    ],
    ["sysctl", "-w", "net.ipv4.ip_forward=1"],
  ]);
});

Deno.test("planNatEnable() filters forwarding into the pool: replies and clients only", () => {
  const [nft] = planNatEnable({ tag: "xvpn0", pool, tun: "xvpn0" });
  const into = 'oifname "xvpn0" ip daddr 10.7.0.0/24';
  assertEquals(
    nft![1]!.endsWith(
      "chain forward { type filter hook forward priority 0; policy accept; " +
        `${into} ct state established,related accept; ${into} iifname "xvpn0" accept; ` +
        `${into} counter drop; }; }`,
    ),
    true,
    nft![1],
  );
  const [open] = planNatEnable({ tag: "xvpn0", pool, tun: "xvpn0", inbound: true });
  assertEquals(open![1]!.includes("chain forward"), false, "inbound: true adds no filter");
});

Deno.test("planNatEnable() without an output interface masquerades on every interface", () => {
  const [nft] = planNatEnable({ tag: "xvpn0", pool });
  assertEquals(nft![1]!.includes("ip saddr 10.7.0.0/24 masquerade;"), true);
  assertEquals(nft![1]!.includes("oifname"), false);
});

Deno.test("planNatDisable() restores forwarding only if it was off, then deletes the table", () => {
  assertEquals(planNatDisable("xvpn0", "0"), [
    ["sysctl", "-w", "net.ipv4.ip_forward=0"],
    ["nft", "delete", "table", "ip", "xvpn_nat_xvpn0"],
  ]);
  assertEquals(planNatDisable("xvpn0", "1"), [["nft", "delete", "table", "ip", "xvpn_nat_xvpn0"]]);
});

Deno.test("natTableName() keeps names nft accepts and rejects unsafe interfaces", () => {
  assertEquals(natTableName("wg-0.a"), "xvpn_nat_wg_0_a");
  assertThrows(() => natTableName(""), Error, "empty");
  assertThrows(
    () => planNatEnable({ tag: "x", pool, outIface: 'eth0" accept; #' }),
    Error,
    "bad output interface",
  );
});

Deno.test("planNat6Enable() NATs the IPv6 pool in an ip6 table with the same forward filter", () => {
  const pool6 = { addr: new Uint8Array([0xfd, 0, 0, 0x77, ...new Array(12).fill(0)]), prefix: 64 };
  const [nft, fwd] = planNat6Enable({ tag: "xvpn0", pool6, tun: "xvpn0" });
  const script = nft![1]!;
  assertEquals(
    script.startsWith("add table ip6 xvpn_nat_xvpn0; delete table ip6 xvpn_nat_xvpn0;"),
    true,
  );
  assertEquals(script.includes("ip6 saddr fd00:77::/64 masquerade;"), true, script);
  assertEquals(
    script.includes('oifname "xvpn0" ip6 daddr fd00:77::/64 ct state established,related accept;'),
    true,
  );
  assertEquals(fwd, ["sysctl", "-w", "net.ipv6.conf.all.forwarding=1"]);
  assertEquals(planNat6Disable("xvpn0", "0"), [
    ["sysctl", "-w", "net.ipv6.conf.all.forwarding=0"],
    ["nft", "delete", "table", "ip6", "xvpn_nat_xvpn0"],
  ]);
});

Deno.test("planNatEnable() masquerades and filters the clients' LANs as the pool", () => {
  const lans = [parseCidr("192.168.50.0/24")!, parseCidr("10.9.0.0/16")!];
  const [nft] = planNatEnable({ tag: "xvpn0", pool, tun: "xvpn0", lans });
  const set = "{ 10.7.0.0/24, 192.168.50.0/24, 10.9.0.0/16 }";
  const into = `oifname "xvpn0" ip daddr ${set}`;
  assertEquals(nft![1]!.includes(`ip saddr ${set} masquerade;`), true, nft![1]);
  assertEquals(
    nft![1]!.includes(
      `${into} ct state established,related accept; ${into} iifname "xvpn0" accept; ` +
        `${into} counter drop;`,
    ),
    true,
    nft![1],
  );
  const pool6 = { addr: new Uint8Array([0xfd, 0, 0, 0x77, ...new Array(12).fill(0)]), prefix: 64 };
  const lan6 = { addr: new Uint8Array([0xfd, 0x50, ...new Array(14).fill(0)]), prefix: 64 };
  const [nft6] = planNat6Enable({ tag: "xvpn0", pool6, tun: "xvpn0", lans: [lan6] });
  assertEquals(nft6![1]!.includes("ip6 saddr { fd00:77::/64, fd50::/64 } masquerade;"), true);
});
