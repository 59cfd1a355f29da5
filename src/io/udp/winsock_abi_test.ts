import { assertEquals, assertThrows } from "../../../tests/support/assert.ts";
import {
  AF_INET,
  decodeSockaddrIn,
  encodeSockaddrIn,
  FIONBIO,
  SOCKADDR_IN_BYTES,
  WINSOCK_SYMBOLS,
  wsaErrorName,
} from "./winsock_abi.ts";

Deno.test("sockaddr_in: family little-endian, port and address big-endian, zero padding", () => {
  const b = new Uint8Array(SOCKADDR_IN_BYTES).fill(0xee);
  // 10.201.2.2:51820 (0xca6c)
  encodeSockaddrIn(b, (10 << 24 | 201 << 16 | 2 << 8 | 2) >>> 0, 51820);
  assertEquals(
    [...b],
    [AF_INET, 0, 0xca, 0x6c, 10, 201, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0],
  );
  assertEquals(decodeSockaddrIn(b), { ip: 0x0ac90202, port: 51820 });
  // The top bit of the address (and the port) survive as unsigned.
  encodeSockaddrIn(b, 0xffffffff, 65535);
  assertEquals([...b.subarray(0, 8)], [2, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
  assertEquals(decodeSockaddrIn(b), { ip: 0xffffffff, port: 65535 });
  // A view into a larger buffer is written at its offset only.
  const big = new Uint8Array(20);
  encodeSockaddrIn(big.subarray(2), 0x7f000001, 80);
  assertEquals([...big.subarray(0, 10)], [0, 0, 2, 0, 0, 80, 127, 0, 0, 1]);
  assertEquals(decodeSockaddrIn(big.subarray(2)), { ip: 0x7f000001, port: 80 });
});

Deno.test("sockaddr_in: not AF_INET decodes as undefined; bad input throws", () => {
  const b = new Uint8Array(SOCKADDR_IN_BYTES);
  b[0] = 23; // AF_INET6 on Windows
  assertEquals(decodeSockaddrIn(b), undefined);
  assertEquals(decodeSockaddrIn(new Uint8Array(4)), undefined);
  assertThrows(() => encodeSockaddrIn(new Uint8Array(8), 1, 1), RangeError);
  assertThrows(() => encodeSockaddrIn(b, 1, 65536), RangeError);
  assertThrows(() => encodeSockaddrIn(b, 1, -1), RangeError);
});

Deno.test("winsock ABI: 32-bit long for ioctlsocket and WSAEventSelect, SOCKET is pointer-wide", () => {
  assertEquals(FIONBIO, -2147195266); // 0x8004667e as a signed 32-bit long
  assertEquals(WINSOCK_SYMBOLS.ioctlsocket.parameters, ["usize", "i32", "buffer"]);
  assertEquals(WINSOCK_SYMBOLS.WSAEventSelect.parameters, ["usize", "pointer", "i32"]);
  assertEquals(WINSOCK_SYMBOLS.socket.result, "usize");
  // int connect(SOCKET s, const sockaddr *name, int namelen); send/recv(SOCKET, char *, int, int)
  assertEquals(WINSOCK_SYMBOLS.connect.parameters, ["usize", "buffer", "i32"]);
  assertEquals(WINSOCK_SYMBOLS.send.parameters, ["usize", "buffer", "i32", "i32"]);
  assertEquals(WINSOCK_SYMBOLS.recv.parameters, ["usize", "buffer", "i32", "i32"]);
  // int WSAEnumNetworkEvents(SOCKET s, WSAEVENT hEventObject, LPWSANETWORKEVENTS)
  assertEquals(WINSOCK_SYMBOLS.WSAEnumNetworkEvents.parameters, ["usize", "pointer", "buffer"]);
  // int getsockopt(SOCKET s, int level, int optname, char *optval, int *optlen)
  assertEquals(WINSOCK_SYMBOLS.getsockopt.parameters, ["usize", "i32", "i32", "buffer", "buffer"]);
  // int setsockopt(SOCKET s, int level, int optname, const char *optval, int optlen)
  assertEquals(WINSOCK_SYMBOLS.setsockopt.parameters, ["usize", "i32", "i32", "buffer", "i32"]);
  assertEquals(wsaErrorName(10035), "WSAEWOULDBLOCK");
  assertEquals(wsaErrorName(1), "error 1");
});
