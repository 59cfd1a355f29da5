/**
 * The Windows client data path, a Worker: a Wintun session and a Winsock UDP socket driven by
 * FFI from one thread that blocks in one synchronous WaitForMultipleObjects on [Wintun read
 * event, socket event (WSAEventSelect FD_READ), wake event] with the core's next deadline as
 * timeout; then it drains the ring (core.fromTun, sendto) and the socket (recvfrom until
 * WSAEWOULDBLOCK, core.receive, WintunSendPacket), runs the core's timers, sends the control
 * datagrams and posts events. The Windows counterpart of `worker.ts` + `loop.ts` for the
 * client role: IPv4, one path, no flow scheduler (packets go straight from one ring to the
 * other; Wintun's rings and the socket buffer are the only queues).
 *
 * Stop and commands come as on Linux: a flag in shared memory and SetEvent on the wake event;
 * the Worker then returns to its event loop to read the queued command message.
 *
 * On Linux it runs over the fake wintun library (a Linux TUN, POSIX sockets, eventfds behind
 * the same names); it has not run on real Windows.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { PacketBuf } from "../../core/packet.ts";
import { Verdict } from "../../core/result.ts";
import { formatIPv4, parseIPv4 } from "../../lib/ip.ts";
import type { Endpoint } from "../../lib/endpoint.ts";
import { loadAead } from "../../crypto/aead.ts";
import { bestX25519 } from "../../crypto/x25519.ts";
import { bigLen } from "../../io/_bigint.ts";
import { requestedGuid } from "../../io/tun/wintun.ts";
import {
  INFINITE,
  KERNEL32_SYMBOLS,
  WAIT_FAILED,
  wideString,
  WinError,
  winErrorName,
  WINTUN_MAX_IP_PACKET_SIZE,
  WINTUN_RING_CAPACITY,
  WINTUN_SYMBOLS,
} from "../../io/tun/wintun_abi.ts";
import { RECV_EMPTY, WinsockUdp } from "../../io/udp/winsock.ts";
import { ClientAdapter } from "../engine.ts";
import { CTRL_COMMAND, CTRL_STOP } from "./messages.ts";
import type { WinInit } from "./win_messages.ts";
import { post, serveWorker } from "./worker_inbox.ts";

/** kernel32 as this Worker calls it: the wait is synchronous (this thread blocks in it). */
const K32 = {
  WaitForMultipleObjects: {
    parameters: ["u32", "pointer", "i32", "u32"],
    result: "u32",
  },
  GetLastError: KERNEL32_SYMBOLS.GetLastError,
  RtlMoveMemory: KERNEL32_SYMBOLS.RtlMoveMemory,
  RtlMoveMemoryOut: KERNEL32_SYMBOLS.RtlMoveMemoryOut,
} as const satisfies Deno.ForeignLibraryInterface;

/** Packets taken from each side per turn before the other gets its turn. */
const BURST = 256;
/** Longest wait with no deadline (a safety net). */
const MAX_WAIT_MS = 60_000;
/** Wait array indices. */
const TUN_INDEX = 0, SOCK_INDEX = 1, WAKE_INDEX = 2;

const nextCommand = serveWorker<WinInit>((init) => run(init));

/** The server endpoint with its IPv4 address as a number (`ip`), as sends need it. */
function numericServer(e: Endpoint): Endpoint & { ip: number } {
  const ip = parseIPv4(e.hostname);
  if (ip === undefined) {
    throw new Error(`the Windows data path speaks IPv4 only; server ${e.hostname} is not`);
  }
  return { ...e, ip };
}

async function run(init: WinInit): Promise<void> {
  const aead = await loadAead("auto");
  const { ClientCore } = await import("../../core/client.ts");
  const client = new ClientCore({ ...init.params, aead, dh: bestX25519() });
  let server = numericServer(init.server);
  const core = new ClientAdapter(client, server);

  // The session: created here, or borrowed from the main thread (win_messages.ts says when).
  const wtLib = Deno.dlopen(init.tun.dll, WINTUN_SYMBOLS);
  const k32Lib = Deno.dlopen(init.kernel32, K32);
  const w = wtLib.symbols, k = k32Lib.symbols;
  let session: Deno.PointerObject, readEvent: Deno.PointerObject;
  let adapter: Deno.PointerObject | undefined;
  if (init.tun.kind === "open") {
    const name16 = wideString(init.tun.name), type16 = wideString("xvpn");
    const guid = requestedGuid(init.tun.name);
    const a = w.WintunCreateAdapter(
      Deno.UnsafePointer.of(name16),
      Deno.UnsafePointer.of(type16),
      Deno.UnsafePointer.of(guid),
    );
    if (a === null) {
      const e = k.GetLastError();
      throw new Error(`cannot create Wintun adapter "${init.tun.name}": ${winErrorName(e)} (${e})`);
    }
    const s = w.WintunStartSession(a, WINTUN_RING_CAPACITY);
    if (s === null) {
      const e = k.GetLastError();
      w.WintunCloseAdapter(a);
      throw new Error(`WintunStartSession failed: ${winErrorName(e)} (${e})`);
    }
    adapter = a;
    session = s;
    readEvent = w.WintunGetReadWaitEvent(s)!;
  } else {
    session = Deno.UnsafePointer.create(init.tun.session)!;
    readEvent = Deno.UnsafePointer.create(init.tun.readEvent)!;
  }

  let udp = WinsockUdp.open({ dll: init.winsock, host: init.bind, port: 0 });
  const handles = new BigUint64Array(3);
  handles[TUN_INDEX] = BigInt(Deno.UnsafePointer.value(readEvent));
  handles[SOCK_INDEX] = udp.eventHandle;
  handles[WAKE_INDEX] = init.wake;
  const handlesPtr = Deno.UnsafePointer.of(handles)!;
  const sizeOut = new Uint32Array(1);
  const sizePtr = Deno.UnsafePointer.of(sizeOut)!;
  const control = new Int32Array(init.control);

  const tunBuf = new Uint8Array(WINTUN_MAX_IP_PACKET_SIZE);
  const sealed = PacketBuf.alloc(WINTUN_MAX_IP_PACKET_SIZE + 64);
  const rx = PacketBuf.alloc(WINTUN_MAX_IP_PACKET_SIZE);
  const opened = new Uint8Array(WINTUN_MAX_IP_PACKET_SIZE);
  const drops = core.drops;
  let tunGone = false;

  const sendTo = (data: Uint8Array, len: number, to: Endpoint) => {
    const ip = (to as { ip?: number }).ip ?? parseIPv4(to.hostname);
    if (ip === undefined) return; // not IPv4: nothing this path can send to
    udp.send(data, len, ip, to.port);
  };
  const writeTun = (buf: Uint8Array, len: number) => {
    if (len <= 0 || len > WINTUN_MAX_IP_PACKET_SIZE) {
      drops.tun_error++;
      return;
    }
    const p = w.WintunAllocateSendPacket(session, len);
    if (p === null) {
      const e = k.GetLastError();
      if (e === WinError.ERROR_BUFFER_OVERFLOW) drops.tun_full++;
      else drops.tun_error++;
      return;
    }
    k.RtlMoveMemory(p, buf, bigLen(len));
    w.WintunSendPacket(session, p);
  };
  const flush = () => {
    for (const o of core.takeOutbox()) sendTo(o.data, o.data.length, o.to);
    const events = core.takeEvents();
    if (events.length) post({ type: "events", events });
  };

  /** Up to BURST packets from the ring, sealed and sent; true when the ring may hold more. */
  const drainTun = (): boolean => {
    for (let i = 0; i < BURST; i++) {
      const p = w.WintunReceivePacket(session, sizePtr);
      if (p === null) {
        const e = k.GetLastError();
        if (e === WinError.ERROR_NO_MORE_ITEMS) return false;
        if (e === WinError.ERROR_HANDLE_EOF) {
          tunGone = true;
          return false;
        }
        throw new Error(`WintunReceivePacket failed: ${winErrorName(e)} (${e})`);
      }
      const n = sizeOut[0]!;
      k.RtlMoveMemoryOut(tunBuf, p, bigLen(n)); // no subarray per packet
      w.WintunReleaseReceivePacket(session, p);
      const r = core.fromTun(performance.now(), tunBuf, n, sealed);
      if (r.verdict === Verdict.Net) sendTo(sealed.buf, sealed.len, r.to!);
    }
    return true;
  };
  /** Up to BURST datagrams, opened and written to the ring; true when more may wait. */
  const drainSock = (): boolean => {
    udp.resetEvent(); // before reading: a datagram arriving meanwhile sets it again
    for (let i = 0; i < BURST; i++) {
      const n = udp.recv(rx.buf);
      if (n === RECV_EMPTY) return false;
      if (n < 0) continue; // skipped (too long, an ICMP report)
      rx.len = n;
      const from = udp.fromIp === server.ip && udp.fromPort === server.port
        ? server
        : { hostname: formatIPv4(udp.fromIp), port: udp.fromPort };
      const r = core.receive(performance.now(), rx, from, opened);
      if (r.verdict === Verdict.Tun) writeTun(opened, r.length);
    }
    return true;
  };

  client.start(performance.now(), Date.now());
  core.tick(performance.now(), Date.now());
  flush();
  post({
    type: "ready",
    local: { hostname: udp.localHost, port: udp.localPort },
    aead: aead.name,
    gso: false,
    warmMs: 0,
  });

  let waitFailed = 0;
  /** Runs until stop, a command, or the core closed; the blocking part. */
  const loop = () => {
    let busy = true;
    for (;;) {
      if (Atomics.load(control, CTRL_STOP) !== 0) return;
      if (Atomics.load(control, CTRL_COMMAND) !== 0) return;
      if (client.closed || tunGone) return;
      let now = performance.now();
      const due = core.deadline();
      let ms = 0;
      if (!busy) {
        ms = due === Infinity ? MAX_WAIT_MS : Math.max(0, Math.ceil(due - now));
        ms = Math.min(ms, MAX_WAIT_MS, INFINITE - 1);
      }
      if (ms > 0 || busy) {
        const r = k.WaitForMultipleObjects(3, handlesPtr, 0, ms);
        if (r === WAIT_FAILED) {
          if (++waitFailed > 100) throw new Error("WaitForMultipleObjects keeps failing");
        } else waitFailed = 0;
      }
      // Whatever ended the wait, both sides are looked at: each drain is a call that returns
      // at once when empty, and the lowest signalled index wins a wait.
      const moreTun = drainTun();
      const moreSock = drainSock();
      busy = moreTun || moreSock;
      now = performance.now();
      if (core.deadline() <= now) core.tick(now, Date.now());
      if (core.pending) flush();
    }
  };

  try {
    for (;;) {
      loop();
      if (Atomics.load(control, CTRL_STOP) !== 0 || client.closed || tunGone) break;
      Atomics.store(control, CTRL_COMMAND, 0);
      const cmd = await nextCommand();
      const now = performance.now();
      switch (cmd.type) {
        case "rebind": {
          const fresh = WinsockUdp.open({ dll: init.winsock, host: init.bind, port: 0 });
          udp.close();
          udp = fresh;
          handles[SOCK_INDEX] = udp.eventHandle;
          core.nudge(now);
          break;
        }
        case "server":
          server = numericServer(cmd.server);
          core.setServer(server);
          break;
        case "nudge":
          core.nudge(now);
          break;
        case "release": {
          const pkt = core.release(cmd.id, cmd.forget);
          if (pkt) writeTun(pkt, pkt.length);
          break;
        }
        case "status":
          post({ type: "status", id: cmd.id, status: { core: core.status(now) } });
          break;
      }
      flush();
    }
    if (client.closed || tunGone) post({ type: "ended" });
    else {
      core.stop(); // the goodbye
      flush();
    }
  } finally {
    post({
      type: "stopped",
      drops: core.drops,
      scheduler: {
        interactive: 0,
        bulk: 0,
        ce_marked: 0,
        codel: 0,
        overflow: 0,
        shed: 0,
        backpressure: 0,
      },
    });
    udp.close();
    if (adapter) {
      w.WintunEndSession(session);
      w.WintunCloseAdapter(adapter);
    }
    wtLib.close();
    k32Lib.close();
  }
}
