/**
 * Teardown on Ctrl-C / SIGTERM for everything that registered. One shared listener destroys all
 * registered resources and only then exits, so that with several topologies alive the first
 * handler cannot exit the process while the others are still cleaning up.
 *
 * @module
 */

/** Something that can be torn down asynchronously. */
export interface Destroyable {
  /** Releases the resource; must be idempotent. */
  destroy(): Promise<void>;
}

const SIGNALS: Deno.Signal[] = ["SIGINT", "SIGTERM"];
const live = new Set<Destroyable>();
let installed = false;
let exiting = false;

function onSignal(signal: Deno.Signal): void {
  if (exiting) return; // a second Ctrl-C while cleaning up: let the cleanup finish
  exiting = true;
  console.error(`\n${signal}: cleaning up ${live.size} topolog${live.size === 1 ? "y" : "ies"}...`);
  Promise.allSettled([...live].map((d) => d.destroy())).finally(() => {
    Deno.exit(signal === "SIGINT" ? 130 : 143);
  });
}

const handlers = new Map<Deno.Signal, () => void>();

function install(): void {
  if (installed) return;
  for (const sig of SIGNALS) {
    const h = () => onSignal(sig);
    handlers.set(sig, h);
    Deno.addSignalListener(sig, h);
  }
  installed = true;
}

function uninstall(): void {
  if (!installed) return;
  for (const [sig, h] of handlers) Deno.removeSignalListener(sig, h);
  handlers.clear();
  installed = false;
}

/**
 * Destroys `d` when the process gets SIGINT or SIGTERM, then exits (130 / 143).
 * @returns a function that unregisters `d` (the listener goes away with the last registration,
 * so it does not keep the process alive).
 */
export function destroyOnSignal(d: Destroyable): () => void {
  live.add(d);
  install();
  return () => {
    live.delete(d);
    if (live.size === 0) uninstall();
  };
}
