/**
 * Protocol timing constants. Names carry their unit; where a value follows WireGuard, the
 * whitepaper section is cited (WireGuard, "Protocol & Cryptography", section 6.1).
 *
 * @module
 */

/** Start a new handshake once the current keys are this old (WireGuard Rekey-After-Time). */
export const REKEY_AFTER_TIME_MS = 120_000;
/** Never use keys older than this (WireGuard Reject-After-Time). */
export const REJECT_AFTER_TIME_MS = 180_000;
/** Start a new handshake after this many messages under one key (WireGuard: 2^60; ours is
 * lower so that counters stay exact JavaScript integers, far below 2^53). */
export const REKEY_AFTER_MESSAGES = 2 ** 48;
/** Never send or accept more messages than this under one key. */
export const REJECT_AFTER_MESSAGES = 2 ** 48 + 2 ** 32;
/** First handshake retransmission delay, doubled per retry. Far below WireGuard's 5 s
 * (Rekey-Timeout): a gamer whose server just restarted should not wait seconds per lost
 * datagram, and an initiation costs the server one Diffie-Hellman. */
export const HANDSHAKE_RETRY_FIRST_MS = 250;
/** Cap of the doubling retry delay. */
export const HANDSHAKE_RETRY_MAX_MS = 8_000;
/** Random jitter added to each retry delay, as a fraction (spreads reconnect storms). */
export const HANDSHAKE_RETRY_JITTER = 0.2;
/** Resend a config request this often until the push arrives. */
export const CONFIG_RETRY_MS = 1_000;
/** The client considers the path dead after this many keepalive intervals without any
 * authenticated datagram from the server, and re-handshakes. */
export const DEAD_AFTER_KEEPALIVES = 3;
/** The server ignores initiations from one client that come faster than this (WireGuard
 * section 5.1: at most one per Rekey-Timeout... we allow more for quick reconnects). */
export const MIN_INITIATION_INTERVAL_MS = 50;
/** With traffic going out and nothing authenticated coming back for this long, the client
 * starts probing the path. Games send and receive many times a second, so this much silence
 * while sending is already suspicious. */
export const LIVENESS_SILENCE_MS = 300;
/** Spacing of liveness probes (keepalive pings) once probing started. */
export const LIVENESS_PROBE_MS = 100;
/** Unanswered liveness probes after which the path counts as dead: about 300 + 6 x 100 = 900 ms
 * after the last reply (a commercial game tunnel documents three missed 750 ms probes, about
 * 2 s; our target is under 1 s). Six in a row, so that 10% loss each way (19% per round trip)
 * fakes a dead path only with probability 0.19^6, about 5e-5 per silent spell. */
export const LIVENESS_PROBES = 6;

// Multipath (dual channel, src/core/paths.ts). Probes are sealed pings of 42 bytes on the wire
// plus IP/UDP headers: five a second per path is about 2.8 kbit/s, nothing next to a game.

/** With several paths, each gets a probe (a flagged ping) this often, in every mode. */
export const PATH_PROBE_MS = 200;
/** A path is down after this many probes in a row went unanswered: 3 x 200 ms plus the last
 * probe's timeout, so a failover happens about 0.5-0.7 s after the path died. */
export const PATH_DEAD_PROBES = 3;
/** The shortest wait for a probe's answer before it counts as unanswered (the actual wait is
 * three smoothed round trips, at most {@link PATH_PROBE_MS}). */
export const PATH_PROBE_TIMEOUT_MIN_MS = 100;
/** A probe unanswered this long counts as lost in the loss figure (late answers still prove
 * the path is alive). */
export const PATH_LOSS_AFTER_MS = 1_000;
/** Failover returns to a more preferred path only after it has stayed up this long (hysteresis:
 * a flapping Wi-Fi must not pull the game back and forth). */
export const PATH_FAILBACK_MS = 3_000;
/** Per-path RTT and loss are reported (logged) this often. */
export const PATH_REPORT_MS = 10_000;
/** Redundant sessions: the server sends each packet to every client endpoint that sent an
 * authenticated datagram within this window. */
export const REDUNDANT_ENDPOINT_MS = 1_000;
/** Redundant sessions: at most this many client endpoints are remembered. */
export const MAX_REDUNDANT_ENDPOINTS = 4;
