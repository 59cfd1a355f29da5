/**
 * Which data path to run.
 *
 * @module
 */
import type { DataPath } from "../config/mod.ts";

/** True when the fast (Linux Worker) path should run for this `data_path` setting. */
export function useFastPath(setting: DataPath): boolean {
  if (setting === "portable") return false;
  if (Deno.build.os === "linux") return true;
  if (setting === "fast") {
    throw new Error(`data_path: fast needs Linux (this is ${Deno.build.os}); use auto or portable`);
  }
  return false;
}
