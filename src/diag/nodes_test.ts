import { assertEquals } from "../../tests/support/assert.ts";
import { chooseNode, nodeScore } from "./nodes.ts";
import { nodeResult, rttReport } from "../../tests/support/noderesults.ts";

const rtt = rttReport;
const result = nodeResult;

Deno.test("nodeScore: median plus twice the jitter plus 10 ms per percent lost", () => {
  assertEquals(nodeScore(rtt(20)), 20);
  assertEquals(nodeScore(rtt(20, 3)), 26);
  assertEquals(nodeScore(rtt(20, 0, 2)), 40);
  assertEquals(nodeScore(rtt(20, 0, 0, 0)), Infinity, "nothing answered");
});

Deno.test("chooseNode: the best score; loss outweighs a few ms; unreachable nodes never", () => {
  const rs = [result("a", rtt(30)), result("b", rtt(25, 0, 5)), result("c", undefined)];
  assertEquals(chooseNode(rs)?.name, "a", "b is faster but loses 5%");
  assertEquals(chooseNode([result("c", undefined)]), undefined);
});

Deno.test("chooseNode: a node in use stays unless another is 10 ms and a third better", () => {
  // 60 -> 45: 15 ms better but not below 2/3 (40): stay.
  assertEquals(chooseNode([result("cur", rtt(60)), result("x", rtt(45))], "cur")?.name, "cur");
  // 60 -> 39: both rules met: move.
  assertEquals(chooseNode([result("cur", rtt(60)), result("x", rtt(39))], "cur")?.name, "x");
  // 12 -> 5: below 2/3 but only 7 ms better: stay.
  assertEquals(chooseNode([result("cur", rtt(12)), result("x", rtt(5))], "cur")?.name, "cur");
  // The node in use is unreachable: the best other.
  assertEquals(chooseNode([result("cur", undefined), result("x", rtt(80))], "cur")?.name, "x");
});
