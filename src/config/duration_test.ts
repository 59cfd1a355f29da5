import { deepStrictEqual as eq } from "node:assert/strict";
import { formatDuration, parseDuration } from "./duration.ts";

Deno.test("duration: numbers are seconds, text takes ms/s/m/h units", () => {
  const cases: [unknown, number | undefined][] = [
    [10, 10_000],
    [0.25, 250],
    ["10s", 10_000],
    ["1500ms", 1500],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["1m30s", 90_000],
    ["1.5s", 1500],
    [0, undefined],
    [-1, undefined],
    ["0s", undefined],
    ["10", undefined],
    ["10 s", undefined],
    ["10sec", undefined],
    ["", undefined],
    [true, undefined],
    [null, undefined],
  ];
  for (const [input, ms] of cases) eq(parseDuration(input), ms, `parseDuration(${input})`);
});

Deno.test("duration: formatting picks the largest exact unit", () => {
  eq([10_000, 1500, 120_000, 3_600_000, 90_000].map(formatDuration), [
    "10s",
    "1500ms",
    "2m",
    "1h",
    "90s",
  ]);
});
