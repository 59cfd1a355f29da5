/**
 * Writing a game profile as YAML that {@link parseProfile} reads back to the same profile: used
 * by `xvpn profile import`, `learn` and `show`.
 *
 * @module
 */
import { formatCidr } from "../lib/ip.ts";
import { formatCidr6 } from "../lib/ip6.ts";
import { formatPortRange, type GameProfile } from "./profile.ts";

/** The fields of a profile that go into its file (`file` is where it goes, not what). */
export type ProfileFields = Omit<GameProfile, "file">;

/** A YAML double-quoted scalar: JSON string syntax is valid YAML 1.2 double-quoted syntax. */
function quoted(s: string): string {
  return JSON.stringify(s);
}

/** One `key:` with a block list, or `key: []` when empty. */
function block(key: string, items: string[]): string[] {
  return items.length ? [`${key}:`, ...items.map((i) => `  - ${i}`)] : [`${key}: []`];
}

/**
 * The YAML text of a profile. `comment` lines (without the `# `) go first, as comments; text
 * values are always quoted, so nothing in a description can turn into YAML syntax.
 */
export function formatProfile(p: ProfileFields, comment: readonly string[] = []): string {
  const lines = comment.flatMap((c) => c.split("\n")).map((c) => c ? `# ${c}` : "#");
  lines.push(`name: ${quoted(p.name)}`);
  if (p.description !== undefined) lines.push(`description: ${quoted(p.description)}`);
  if (p.source !== undefined) lines.push(`source: ${quoted(p.source)}`);
  lines.push(...block("cidrs", [...p.cidrs.map(formatCidr), ...p.cidrs6.map(formatCidr6)]));
  lines.push(...block("domains", p.domains.map(quoted)));
  lines.push(
    ...block(
      "ports",
      p.ports.map((r) => r.proto || r.from !== r.to ? quoted(formatPortRange(r)) : `${r.from}`),
    ),
  );
  return lines.join("\n") + "\n";
}
