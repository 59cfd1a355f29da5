/*
 * A fake wintun.dll for Linux, so that xvpn's Windows TUN code (src/io/tun/wintun.ts) runs
 * unchanged in a root test: it exports the wintun.h functions xvpn calls, plus stand-ins for
 * the kernel32 calls it makes (WaitForMultipleObjects, WaitForSingleObject, CreateEventW,
 * SetEvent, ResetEvent, CloseHandle, GetLastError, RtlMoveMemory), and the Winsock calls of
 * the data-path Worker, over a Linux TUN device, POSIX sockets and eventfds.
 *
 * Calling convention: wintun.h declares everything WINAPI (__stdcall), which only differs from
 * the default on 32-bit x86; x86-64 Windows has one convention, and so does System V x86-64
 * (this build). Deno's FFI calls with the platform's default, so one TypeScript symbol table
 * (src/io/tun/wintun_abi.ts) fits both the real DLL and this library.
 *
 * What is modelled, and how:
 * - An adapter is a TUN device: /dev/net/tun, TUNSETIFF with IFF_TUN | IFF_NO_PI, O_NONBLOCK.
 *   Its name is the UTF-16 adapter name, which must be ASCII and fit IFNAMSIZ here. Closing a
 *   created adapter closes the fd, which removes the (non-persistent) device, as Wintun
 *   removes the adapters it created. WintunOpenAdapter finds adapters of this process only.
 * - The LUID is built from the ifindex (NetLuidIndex) and IF_TYPE_PROP_VIRTUAL (53).
 * - A session reads and writes the TUN fd. WintunReceivePacket reads one packet into a
 *   buffer from a per-session free list (ERROR_NO_MORE_ITEMS on EAGAIN, ERROR_HANDLE_EOF when
 *   the device is gone, e.g. after `ip link del`); WintunReleaseReceivePacket gives it back.
 *   WintunAllocateSendPacket hands out a buffer and WintunSendPacket writes it to the TUN.
 *   The receive ring's room is the TUN's queue towards us (txqueuelen), set from the ring's
 *   capacity at session start; the send ring is not modelled, except that
 *   FAKE_WINTUN_SEND_LIMIT=N (read at session start) makes allocations after the N-th report
 *   ERROR_BUFFER_OVERFLOW, a full send ring.
 * - An event HANDLE is a small struct holding an eventfd (bManualReset and bInitialState as
 *   Windows has them; named events are not supported). The session's read event is signalled
 *   while the TUN fd is readable (level-triggered: the real one is an auto-reset event set
 *   whenever the driver moved the ring's tail, so it may also fire with nothing left to read;
 *   callers of either loop) or after SetEvent on it (as wireguard-go does on close).
 * - WaitForMultipleObjects (bWaitAll = FALSE only) polls every handle's fds; the lowest
 *   signalled index wins, as on Windows, and only that handle's state changes: an auto-reset
 *   event is consumed (its eventfd drained; if another waiter drained it first, the wait goes
 *   on), a manual-reset one stays signalled until ResetEvent. xvpn's wake event is auto-reset.
 * - GetLastError is thread-local, like Windows' last error; each failing call sets it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define API __attribute__((visibility("default")))

typedef uint32_t DWORD;
typedef int32_t BOOL;
typedef uint8_t BYTE;
typedef uint16_t WCHAR;
typedef void *HANDLE;

/* winerror.h */
#define ERROR_SUCCESS 0
#define ERROR_FILE_NOT_FOUND 2
#define ERROR_TOO_MANY_OPEN_FILES 4
#define ERROR_ACCESS_DENIED 5
#define ERROR_INVALID_HANDLE 6
#define ERROR_NOT_ENOUGH_MEMORY 8
#define ERROR_GEN_FAILURE 31
#define ERROR_HANDLE_EOF 38
#define ERROR_NOT_SUPPORTED 50
#define ERROR_INVALID_PARAMETER 87
#define ERROR_BUFFER_OVERFLOW 111
#define ERROR_ALREADY_EXISTS 183
#define ERROR_NO_MORE_ITEMS 259
#define ERROR_ALREADY_INITIALIZED 1247

#define WAIT_OBJECT_0 0u
#define WAIT_TIMEOUT 0x102u
#define WAIT_FAILED 0xffffffffu
#define INFINITE 0xffffffffu
#define MAXIMUM_WAIT_OBJECTS 64

#define WINTUN_MIN_RING_CAPACITY 0x20000u
#define WINTUN_MAX_RING_CAPACITY 0x4000000u
#define WINTUN_MAX_IP_PACKET_SIZE 0xffffu
#define IF_TYPE_PROP_VIRTUAL 53u
/* Reported as the running driver's version: 0.14, the current Wintun release. */
#define FAKE_DRIVER_VERSION ((0u << 16) | 14u)

static __thread DWORD last_error;

static void *fail(DWORD code) {
    last_error = code;
    return NULL;
}

/* The Win32 error closest to a Linux errno from open/ioctl/read/write. */
static DWORD win_error(int e) {
    switch (e) {
    case EPERM:
    case EACCES: return ERROR_ACCESS_DENIED;
    case ENOENT:
    case ENODEV:
    case ENXIO: return ERROR_FILE_NOT_FOUND;
    case EBUSY:
    case EEXIST: return ERROR_ALREADY_EXISTS;
    case EINVAL: return ERROR_INVALID_PARAMETER;
    case ENOMEM:
    case ENOBUFS: return ERROR_NOT_ENOUGH_MEMORY;
    case EMFILE:
    case ENFILE: return ERROR_TOO_MANY_OPEN_FILES;
    default: return ERROR_GEN_FAILURE;
    }
}

/* ---- events ---------------------------------------------------------------------------- */

#define EVENT_MAGIC 0x45564e54u /* "EVNT" */

struct event {
    uint32_t magic;
    int efd;    /* signalled state: the eventfd counter is non-zero */
    int manual; /* bManualReset */
    int tunfd;  /* read event of a session, or a WSAEventSelect(FD_READ) event: also signalled
                 * while this fd (the TUN's, the socket's) is readable; else -1 */
    int owned;  /* CloseHandle may free it (the read event belongs to its session) */
    int writefd; /* a WSAEventSelect(FD_WRITE) event: the socket, else -1 */
    int write_armed; /* FD_WRITE is due once the socket is writable (set by WSAEventSelect and
                      * by a send that would block; cleared once recorded) */
    int write_recorded; /* FD_WRITE happened: in the network-event record until
                         * WSAEnumNetworkEvents reads it (it also set the event) */
};

static struct event *as_event(HANDLE h) {
    struct event *e = h;
    return e && e->magic == EVENT_MAGIC ? e : NULL;
}

static int event_init(struct event *e, int manual, int initial, int tunfd, int owned) {
    e->efd = eventfd(initial ? 1 : 0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->efd < 0) return -1;
    e->magic = EVENT_MAGIC;
    e->manual = manual;
    e->tunfd = tunfd;
    e->owned = owned;
    e->writefd = -1;
    e->write_armed = 0;
    e->write_recorded = 0;
    return 0;
}

static void event_destroy(struct event *e) {
    e->magic = 0;
    close(e->efd);
}

/* HANDLE CreateEventW(LPSECURITY_ATTRIBUTES, BOOL bManualReset, BOOL bInitialState, LPCWSTR) */
API HANDLE CreateEventW(void *attrs, BOOL manual, BOOL initial, const WCHAR *name) {
    (void)attrs;
    if (name) return fail(ERROR_NOT_SUPPORTED); /* named events: not modelled */
    struct event *e = calloc(1, sizeof *e);
    if (!e) return fail(ERROR_NOT_ENOUGH_MEMORY);
    if (event_init(e, manual != 0, initial != 0, -1, 1) < 0) {
        DWORD code = win_error(errno);
        free(e);
        return fail(code);
    }
    return e;
}

/* BOOL SetEvent(HANDLE) */
API BOOL SetEvent(HANDLE h) {
    struct event *e = as_event(h);
    if (!e) return (last_error = ERROR_INVALID_HANDLE), 0;
    uint64_t one = 1;
    /* EAGAIN only when the counter is saturated: the event is signalled already. */
    if (write(e->efd, &one, sizeof one) < 0 && errno != EAGAIN) {
        last_error = win_error(errno);
        return 0;
    }
    return 1;
}

/* BOOL ResetEvent(HANDLE) */
API BOOL ResetEvent(HANDLE h) {
    struct event *e = as_event(h);
    if (!e) return (last_error = ERROR_INVALID_HANDLE), 0;
    uint64_t v;
    (void)!read(e->efd, &v, sizeof v); /* EAGAIN: not signalled, nothing to do */
    return 1;
}

/* BOOL CloseHandle(HANDLE) — events only; a session's read event is the session's to close. */
API BOOL CloseHandle(HANDLE h) {
    struct event *e = as_event(h);
    if (!e || !e->owned) return (last_error = ERROR_INVALID_HANDLE), 0;
    event_destroy(e);
    free(e);
    return 1;
}

/* DWORD GetLastError(VOID) */
API DWORD GetLastError(void) { return last_error; }

/* VOID RtlMoveMemory(VOID *Destination, const VOID *Source, SIZE_T Length) */
API void RtlMoveMemory(void *dst, const void *src, size_t len) { memmove(dst, src, len); }

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An armed FD_WRITE whose socket has room is recorded now: the record gets FD_WRITE and the
 * event is set, as Winsock does the moment the socket can send again (the fake only notices
 * when someone looks: a wait, a reset, an enumeration). */
static void record_write(struct event *e) {
    if (e->writefd < 0 || !__atomic_load_n(&e->write_armed, __ATOMIC_SEQ_CST)) return;
    struct pollfd p = {.fd = e->writefd, .events = POLLOUT};
    if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLOUT)) return;
    __atomic_store_n(&e->write_armed, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&e->write_recorded, 1, __ATOMIC_SEQ_CST);
    uint64_t one = 1;
    (void)!write(e->efd, &one, sizeof one);
}

/* DWORD WaitForMultipleObjects(DWORD nCount, const HANDLE *lpHandles, BOOL bWaitAll,
 * DWORD dwMilliseconds) — see the file comment for the semantics. */
API DWORD WaitForMultipleObjects(DWORD n, const HANDLE *handles, BOOL all, DWORD ms) {
    if (n == 0 || n > MAXIMUM_WAIT_OBJECTS || !handles) {
        last_error = ERROR_INVALID_PARAMETER;
        return WAIT_FAILED;
    }
    if (all) {
        last_error = ERROR_NOT_SUPPORTED;
        return WAIT_FAILED;
    }
    struct event *ev[MAXIMUM_WAIT_OBJECTS];
    struct pollfd fds[3 * MAXIMUM_WAIT_OBJECTS];
    /* Per handle: its eventfd's pollfd, its readable fd's (-1: none), its FD_WRITE socket's. */
    int efd_at[MAXIMUM_WAIT_OBJECTS], rfd_at[MAXIMUM_WAIT_OBJECTS], wfd_at[MAXIMUM_WAIT_OBJECTS];
    nfds_t nfds = 0;
    for (DWORD i = 0; i < n; i++) {
        if (!(ev[i] = as_event(handles[i]))) {
            last_error = ERROR_INVALID_HANDLE;
            return WAIT_FAILED;
        }
        efd_at[i] = (int)nfds;
        fds[nfds++] = (struct pollfd){.fd = ev[i]->efd, .events = POLLIN};
        rfd_at[i] = wfd_at[i] = -1;
        if (ev[i]->tunfd >= 0) {
            rfd_at[i] = (int)nfds;
            fds[nfds++] = (struct pollfd){.fd = ev[i]->tunfd, .events = POLLIN};
        }
        if (ev[i]->writefd >= 0 && __atomic_load_n(&ev[i]->write_armed, __ATOMIC_SEQ_CST)) {
            wfd_at[i] = (int)nfds;
            fds[nfds++] = (struct pollfd){.fd = ev[i]->writefd, .events = POLLOUT};
        }
    }
    const int64_t deadline = ms == INFINITE ? -1 : now_ms() + ms;
    for (;;) {
        int timeout = -1;
        if (deadline >= 0) {
            int64_t left = deadline - now_ms();
            timeout = left > 0 ? (int)(left > 0x7fffffff ? 0x7fffffff : left) : 0;
        }
        int r = poll(fds, nfds, timeout);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            last_error = win_error(errno);
            return WAIT_FAILED;
        }
        if (r == 0) return WAIT_TIMEOUT;
        for (DWORD i = 0; i < n; i++) {
            const short ready = POLLIN | POLLOUT | POLLERR | POLLHUP | POLLNVAL;
            if (rfd_at[i] >= 0 && (fds[rfd_at[i]].revents & ready)) return WAIT_OBJECT_0 + i;
            if (wfd_at[i] >= 0 && (fds[wfd_at[i]].revents & ready)) {
                /* FD_WRITE is recorded once per would-block send, into the record and the
                 * (manual-reset) event, as Winsock does: a reset of the event loses it. */
                record_write(ev[i]);
                return WAIT_OBJECT_0 + i;
            }
            if (!(fds[efd_at[i]].revents & ready)) continue;
            if (ev[i]->manual) return WAIT_OBJECT_0 + i;
            uint64_t v;
            if (read(ev[i]->efd, &v, sizeof v) == sizeof v) return WAIT_OBJECT_0 + i;
            /* Another waiter consumed this auto-reset event first: not ours after all. */
        }
        if (deadline >= 0 && now_ms() >= deadline) return WAIT_TIMEOUT;
    }
}

/* DWORD WaitForSingleObject(HANDLE hHandle, DWORD dwMilliseconds) */
API DWORD WaitForSingleObject(HANDLE h, DWORD ms) { return WaitForMultipleObjects(1, &h, 0, ms); }

/* ---- adapters -------------------------------------------------------------------------- */

#define ADAPTER_MAGIC 0x41445054u /* "ADPT" */
#define SESSION_MAGIC 0x53455353u /* "SESS" */

struct tundev {
    int fd;
    int refs;
    unsigned ifindex;
    char name[IFNAMSIZ];
    struct tundev *next;
    struct session *session;
};

struct adapter {
    uint32_t magic;
    struct tundev *dev;
};

struct packet {
    struct packet *next;
    DWORD size;
    BYTE data[WINTUN_MAX_IP_PACKET_SIZE];
};

struct session {
    uint32_t magic;
    struct tundev *dev;
    struct event read_event;
    pthread_mutex_t lock; /* guards free and the counters: wintun's calls are thread-safe */
    struct packet *free;
    long send_limit; /* FAKE_WINTUN_SEND_LIMIT, or -1 */
    long sent;
};

static pthread_mutex_t devs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tundev *devs;

/* The ASCII interface name of a UTF-16 adapter name; -1 when it is not ASCII or too long. */
static int ascii_name(const WCHAR *w, char out[IFNAMSIZ]) {
    if (!w) return -1;
    size_t i = 0;
    for (; w[i]; i++) {
        if (i >= IFNAMSIZ - 1 || w[i] >= 0x80) return -1;
        out[i] = (char)w[i];
    }
    out[i] = 0;
    return i > 0 ? 0 : -1;
}

static struct adapter *new_handle(struct tundev *d) {
    struct adapter *a = calloc(1, sizeof *a);
    if (!a) return fail(ERROR_NOT_ENOUGH_MEMORY);
    a->magic = ADAPTER_MAGIC;
    a->dev = d;
    return a;
}

/* WINTUN_ADAPTER_HANDLE WintunCreateAdapter(LPCWSTR Name, LPCWSTR TunnelType,
 * const GUID *RequestedGUID) — the tunnel type and GUID mean nothing to Linux. */
API void *WintunCreateAdapter(const WCHAR *name, const WCHAR *type, const void *guid) {
    (void)type;
    (void)guid;
    struct tundev *d = calloc(1, sizeof *d);
    if (!d) return fail(ERROR_NOT_ENOUGH_MEMORY);
    if (ascii_name(name, d->name) < 0) {
        free(d);
        return fail(ERROR_INVALID_PARAMETER);
    }
    d->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (d->fd < 0) {
        DWORD code = win_error(errno);
        free(d);
        return fail(code);
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, d->name, sizeof d->name);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    if (ioctl(d->fd, TUNSETIFF, &ifr) < 0) {
        DWORD code = win_error(errno);
        close(d->fd);
        free(d);
        return fail(code);
    }
    d->ifindex = if_nametoindex(d->name);
    d->refs = 1;
    struct adapter *a = new_handle(d);
    if (!a) {
        close(d->fd);
        free(d);
        return NULL;
    }
    pthread_mutex_lock(&devs_lock);
    d->next = devs;
    devs = d;
    pthread_mutex_unlock(&devs_lock);
    return a;
}

/* WINTUN_ADAPTER_HANDLE WintunOpenAdapter(LPCWSTR Name) — adapters of this process only. */
API void *WintunOpenAdapter(const WCHAR *name) {
    char want[IFNAMSIZ];
    if (ascii_name(name, want) < 0) return fail(ERROR_INVALID_PARAMETER);
    pthread_mutex_lock(&devs_lock);
    struct tundev *d = devs;
    while (d && strcmp(d->name, want) != 0) d = d->next;
    if (d) d->refs++;
    pthread_mutex_unlock(&devs_lock);
    if (!d) return fail(ERROR_FILE_NOT_FOUND);
    return new_handle(d);
}

/* VOID WintunCloseAdapter(WINTUN_ADAPTER_HANDLE) — the last handle closes the TUN fd. */
API void WintunCloseAdapter(void *h) {
    struct adapter *a = h;
    if (!a || a->magic != ADAPTER_MAGIC) return;
    struct tundev *d = a->dev;
    a->magic = 0;
    free(a);
    pthread_mutex_lock(&devs_lock);
    int last = --d->refs == 0;
    if (last) {
        struct tundev **p = &devs;
        while (*p != d) p = &(*p)->next;
        *p = d->next;
    }
    pthread_mutex_unlock(&devs_lock);
    if (last) {
        close(d->fd);
        free(d);
    }
}

/* VOID WintunGetAdapterLUID(WINTUN_ADAPTER_HANDLE, NET_LUID *) — NET_LUID's Info bit fields:
 * Reserved:24, NetLuidIndex:24, IfType:16. */
API void WintunGetAdapterLUID(void *h, uint64_t *luid) {
    struct adapter *a = h;
    if (!a || a->magic != ADAPTER_MAGIC || !luid) return;
    *luid = ((uint64_t)(a->dev->ifindex & 0xffffff) << 24) | ((uint64_t)IF_TYPE_PROP_VIRTUAL << 48);
}

/* DWORD WintunGetRunningDriverVersion(VOID) */
API DWORD WintunGetRunningDriverVersion(void) { return FAKE_DRIVER_VERSION; }

/* ---- sessions -------------------------------------------------------------------------- */

static struct session *as_session(void *h) {
    struct session *s = h;
    return s && s->magic == SESSION_MAGIC ? s : NULL;
}

/* The ring's room, in packets, as the device's queue towards us (txqueuelen, which is where a
 * Linux TUN drops what its reader has not taken): Wintun's ring of `capacity` bytes holds about
 * capacity / (1420 + its 4-byte header, 4-aligned) full-size packets before the driver drops,
 * where a TUN's default queue holds 500 (or 1000). Best effort: a failure keeps the default. */
static void set_ring_packets(const char name[IFNAMSIZ], DWORD capacity) {
    /* By syscall: this library exports its own `socket` (the Winsock stand-in). */
    int fd = (int)syscall(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, name, IFNAMSIZ);
    ifr.ifr_qlen = (int)(capacity / 1424);
    (void)ioctl(fd, SIOCSIFTXQLEN, &ifr);
    close(fd);
}

/* WINTUN_SESSION_HANDLE WintunStartSession(WINTUN_ADAPTER_HANDLE, DWORD Capacity) */
API void *WintunStartSession(void *h, DWORD capacity) {
    struct adapter *a = h;
    if (!a || a->magic != ADAPTER_MAGIC) return fail(ERROR_INVALID_HANDLE);
    if (capacity < WINTUN_MIN_RING_CAPACITY || capacity > WINTUN_MAX_RING_CAPACITY ||
        (capacity & (capacity - 1)) != 0)
        return fail(ERROR_INVALID_PARAMETER);
    if (a->dev->session) return fail(ERROR_ALREADY_INITIALIZED);
    struct session *s = calloc(1, sizeof *s);
    if (!s) return fail(ERROR_NOT_ENOUGH_MEMORY);
    /* Auto-reset, like the real read event; signalled while the TUN fd is readable too. */
    if (event_init(&s->read_event, 0, 0, a->dev->fd, 0) < 0) {
        DWORD code = win_error(errno);
        free(s);
        return fail(code);
    }
    set_ring_packets(a->dev->name, capacity);
    pthread_mutex_init(&s->lock, NULL);
    const char *limit = getenv("FAKE_WINTUN_SEND_LIMIT");
    s->send_limit = limit && *limit ? strtol(limit, NULL, 10) : -1;
    s->magic = SESSION_MAGIC;
    s->dev = a->dev;
    a->dev->session = s;
    return s;
}

/* VOID WintunEndSession(WINTUN_SESSION_HANDLE) */
API void WintunEndSession(void *h) {
    struct session *s = as_session(h);
    if (!s) return;
    s->magic = 0;
    s->dev->session = NULL;
    event_destroy(&s->read_event);
    for (struct packet *p = s->free, *next; p; p = next) {
        next = p->next;
        free(p);
    }
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* HANDLE WintunGetReadWaitEvent(WINTUN_SESSION_HANDLE) */
API HANDLE WintunGetReadWaitEvent(void *h) {
    struct session *s = as_session(h);
    return s ? &s->read_event : fail(ERROR_INVALID_HANDLE);
}

static struct packet *take_buffer(struct session *s) {
    pthread_mutex_lock(&s->lock);
    struct packet *p = s->free;
    if (p) s->free = p->next;
    pthread_mutex_unlock(&s->lock);
    return p ? p : malloc(sizeof *p);
}

static void give_back(struct session *s, const BYTE *data) {
    struct packet *p = (struct packet *)(data - offsetof(struct packet, data));
    pthread_mutex_lock(&s->lock);
    p->next = s->free;
    s->free = p;
    pthread_mutex_unlock(&s->lock);
}

/* BYTE *WintunReceivePacket(WINTUN_SESSION_HANDLE, DWORD *PacketSize) */
API BYTE *WintunReceivePacket(void *h, DWORD *size) {
    struct session *s = as_session(h);
    if (!s || !size) return fail(ERROR_INVALID_PARAMETER);
    struct packet *p = take_buffer(s);
    if (!p) return fail(ERROR_NOT_ENOUGH_MEMORY);
    ssize_t n = read(s->dev->fd, p->data, sizeof p->data);
    if (n < 0) {
        int e = errno;
        give_back(s, p->data);
        if (e == EAGAIN || e == EINTR) return fail(ERROR_NO_MORE_ITEMS);
        /* EBADFD: the device was unregistered (ip link del); EIO and friends likewise end it. */
        return fail(e == EBADFD || e == EIO || e == ENODEV ? ERROR_HANDLE_EOF : win_error(e));
    }
    *size = (DWORD)n;
    return p->data;
}

/* VOID WintunReleaseReceivePacket(WINTUN_SESSION_HANDLE, const BYTE *Packet) */
API void WintunReleaseReceivePacket(void *h, const BYTE *packet) {
    struct session *s = as_session(h);
    if (s && packet) give_back(s, packet);
}

/* BYTE *WintunAllocateSendPacket(WINTUN_SESSION_HANDLE, DWORD PacketSize) */
API BYTE *WintunAllocateSendPacket(void *h, DWORD size) {
    struct session *s = as_session(h);
    if (!s) return fail(ERROR_INVALID_HANDLE);
    if (size > WINTUN_MAX_IP_PACKET_SIZE) return fail(ERROR_INVALID_PARAMETER);
    pthread_mutex_lock(&s->lock);
    int full = s->send_limit >= 0 && s->sent >= s->send_limit;
    if (!full) s->sent++;
    pthread_mutex_unlock(&s->lock);
    if (full) return fail(ERROR_BUFFER_OVERFLOW);
    struct packet *p = take_buffer(s);
    if (!p) return fail(ERROR_NOT_ENOUGH_MEMORY);
    p->size = size;
    return p->data;
}

/* VOID WintunSendPacket(WINTUN_SESSION_HANDLE, const BYTE *Packet) — like the real call it
 * reports nothing: a packet the kernel refuses is dropped, as a driver would drop it. */
API void WintunSendPacket(void *h, const BYTE *packet) {
    struct session *s = as_session(h);
    if (!s || !packet) return;
    const struct packet *p = (const struct packet *)(packet - offsetof(struct packet, data));
    (void)!write(s->dev->fd, p->data, p->size);
    give_back(s, packet);
}

/* ---- Winsock (ws2_32.dll) stand-ins ------------------------------------------------------
 * Just enough of Winsock 2 for xvpn's Windows data-path Worker (src/io/udp/winsock.ts), over
 * POSIX sockets, with Windows' types: SOCKET is a UINT_PTR (here the fd, widened), `long` and
 * `u_long` are 32-bit (LLP64), errors come from WSAGetLastError (thread-local, like the real
 * one) as WSA codes: EAGAIN reads as WSAEWOULDBLOCK (10035). sockaddr_in has the same layout
 * on both (u16 family, u16 port big-endian, u32 address, 8 zero bytes), AF_INET is 2 on both,
 * so addresses pass through untouched.
 * - WSAStartup/WSACleanup only count; WSAStartup fills wVersion/wHighVersion of the WSADATA.
 * - ioctlsocket(FIONBIO) sets O_NONBLOCK; FIONREAD gives the bytes waiting (see there).
 * - WSACreateEvent is CreateEventW(manual reset, not signalled). WSAEventSelect(s, ev, FD_READ)
 *   ties the event to the socket's fd: the event is then signalled while the socket is
 *   readable (level-triggered). Real Winsock records FD_READ into a manual-reset event that
 *   stays set until WSAResetEvent, re-armed by every recvfrom; a caller that resets the event
 *   and then reads until WSAEWOULDBLOCK, as xvpn does, sees the same thing from both. As on
 *   Windows, WSAEventSelect also makes the socket non-blocking. FD_WRITE is modelled as
 *   Winsock records it: once when selected, then once after each send that would block, as
 *   soon as the socket has room again (edge-triggered; the flow scheduler's backpressure),
 *   into the network-event record and the event: WSAResetEvent loses it for a waiter, and
 *   WSAEnumNetworkEvents reads and clears the record and the event together.
 * - setsockopt/getsockopt: SO_SNDBUF and SO_RCVBUF of SOL_SOCKET, IP_MTU_DISCOVER and IP_MTU of
 *   IPPROTO_IP, in Windows' numbers. connect, send and recv for the probe socket of `diag mtu`.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

typedef uintptr_t SOCKET;
#define INVALID_SOCKET ((SOCKET)~(uintptr_t)0)
#define SOCKET_ERROR (-1)
#define WS_FIONBIO ((int32_t)0x8004667eu)
#define WS_FIONREAD ((int32_t)0x4004667fu)
#define WS_FD_READ 0x01
#define WS_FD_WRITE 0x02
#define WSAEINTR 10004
#define WSAEBADF 10009
#define WSAEACCES 10013
#define WSAEFAULT 10014
#define WSAEINVAL 10022
#define WSAEMFILE 10024
#define WSAEWOULDBLOCK 10035
#define WSAEMSGSIZE 10040
#define WSAEAFNOSUPPORT 10047
#define WSAEADDRINUSE 10048
#define WSAEADDRNOTAVAIL 10049
#define WSAENETUNREACH 10051
#define WSAENOBUFS 10055
#define WSAECONNREFUSED 10061
#define WSAEHOSTUNREACH 10065
#define WSAECONNRESET 10054
#define WSANOTINITIALISED 10093

static __thread int wsa_error;
static int wsa_started;

static int wsa_code(int e) {
    switch (e) {
    case EAGAIN: return WSAEWOULDBLOCK;
    case EINTR: return WSAEINTR;
    case EBADF: return WSAEBADF;
    case EACCES:
    case EPERM: return WSAEACCES;
    case EFAULT: return WSAEFAULT;
    case EMFILE: return WSAEMFILE;
    case EMSGSIZE: return WSAEMSGSIZE;
    case EAFNOSUPPORT: return WSAEAFNOSUPPORT;
    case EADDRINUSE: return WSAEADDRINUSE;
    case EADDRNOTAVAIL: return WSAEADDRNOTAVAIL;
    case ENETUNREACH: return WSAENETUNREACH;
    case ENOBUFS:
    case ENOMEM: return WSAENOBUFS;
    case ECONNREFUSED: return WSAECONNREFUSED;
    case EHOSTUNREACH: return WSAEHOSTUNREACH;
    default: return WSAEINVAL;
    }
}

static int sock_fail(void) {
    wsa_error = wsa_code(errno);
    return SOCKET_ERROR;
}

/* int WSAStartup(WORD wVersionRequested, LPWSADATA lpWSAData) — returns the error itself */
API int WSAStartup(uint16_t version, void *data) {
    if (!data) return WSAEFAULT;
    uint16_t v[2] = {version, 0x0202};
    memcpy(data, v, sizeof v);
    __atomic_add_fetch(&wsa_started, 1, __ATOMIC_SEQ_CST);
    return 0;
}

/* int WSACleanup(void) */
API int WSACleanup(void) {
    if (__atomic_load_n(&wsa_started, __ATOMIC_SEQ_CST) <= 0) {
        wsa_error = WSANOTINITIALISED;
        return SOCKET_ERROR;
    }
    __atomic_sub_fetch(&wsa_started, 1, __ATOMIC_SEQ_CST);
    return 0;
}

/* int WSAGetLastError(void) */
API int WSAGetLastError(void) { return wsa_error; }

/* The POSIX calls themselves go through syscall(): this library exports Winsock's socket,
 * bind, sendto, recvfrom and getsockname (by asm labels, since <sys/socket.h> declares the
 * libc ones), and a call by name from in here must not land on its own stand-in. */
#include <sys/syscall.h>

static int started(void) {
    if (__atomic_load_n(&wsa_started, __ATOMIC_SEQ_CST) > 0) return 1;
    wsa_error = WSANOTINITIALISED;
    return 0;
}

/* The FD_WRITE event of each socket (by fd), for sendto to arm. */
#define MAX_SELECT_FD 4096
static struct event *write_events[MAX_SELECT_FD];

static void arm_write(int fd) {
    if (fd < 0 || fd >= MAX_SELECT_FD) return;
    struct event *e = __atomic_load_n(&write_events[fd], __ATOMIC_SEQ_CST);
    if (e) __atomic_store_n(&e->write_armed, 1, __ATOMIC_SEQ_CST);
}

/* SOCKET socket(int af, int type, int protocol) */
API SOCKET ws_socket(int af, int type, int protocol) __asm__("socket");
API SOCKET ws_socket(int af, int type, int protocol) {
    if (!started()) return INVALID_SOCKET;
    long fd = syscall(SYS_socket, af, type | SOCK_CLOEXEC, protocol);
    if (fd < 0) {
        wsa_error = wsa_code(errno);
        return INVALID_SOCKET;
    }
    return (SOCKET)fd;
}

static int sock_fd(SOCKET s) {
    if (s == INVALID_SOCKET || s > 0x7fffffff) {
        wsa_error = 10038; /* WSAENOTSOCK */
        return -1;
    }
    return (int)s;
}

/* int bind(SOCKET s, const struct sockaddr *name, int namelen) */
API int ws_bind(SOCKET s, const void *name, int len) __asm__("bind");
API int ws_bind(SOCKET s, const void *name, int len) {
    int fd = sock_fd(s);
    if (fd < 0) return SOCKET_ERROR;
    return syscall(SYS_bind, fd, name, (socklen_t)len) < 0 ? sock_fail() : 0;
}

/* int getsockname(SOCKET s, struct sockaddr *name, int *namelen) */
API int ws_getsockname(SOCKET s, void *name, int *len) __asm__("getsockname");
API int ws_getsockname(SOCKET s, void *name, int *len) {
    int fd = sock_fd(s);
    if (fd < 0) return SOCKET_ERROR;
    if (!len) return (wsa_error = WSAEFAULT), SOCKET_ERROR;
    socklen_t l = (socklen_t)*len;
    if (syscall(SYS_getsockname, fd, name, &l) < 0) return sock_fail();
    *len = (int)l;
    return 0;
}

/* int ioctlsocket(SOCKET s, long cmd, u_long *argp) — long and u_long are 32-bit on Windows */
API int ioctlsocket(SOCKET s, int32_t cmd, uint32_t *argp) {
    int fd = sock_fd(s);
    if (fd < 0) return SOCKET_ERROR;
    if (cmd == WS_FIONREAD && argp) {
        /* Windows: every byte waiting in a datagram socket's buffer (Linux's FIONREAD gives the
         * first datagram only). The nearest Linux figure is the receive queue's memory
         * (SO_MEMINFO's rmem_alloc: the datagrams' truesize, about 1.5x their bytes). */
        uint32_t mem[9] = {0};
        socklen_t l = sizeof mem;
        if (syscall(SYS_getsockopt, fd, SOL_SOCKET, 55 /* SO_MEMINFO */, mem, &l) < 0) {
            return sock_fail();
        }
        *argp = mem[0];
        return 0;
    }
    if (cmd != WS_FIONBIO || !argp) return (wsa_error = WSAEINVAL), SOCKET_ERROR;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return sock_fail();
    fl = *argp ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    return fcntl(fd, F_SETFL, fl) < 0 ? sock_fail() : 0;
}

/* int sendto(SOCKET s, const char *buf, int len, int flags, const struct sockaddr *to,
 * int tolen) — the bytes sent, or SOCKET_ERROR */
API int ws_sendto(SOCKET s, const char *buf, int len, int flags, const void *to, int tolen)
    __asm__("sendto");
API int ws_sendto(SOCKET s, const char *buf, int len, int flags, const void *to, int tolen) {
    int fd = sock_fd(s);
    if (fd < 0) return SOCKET_ERROR;
    if (flags) return (wsa_error = WSAEINVAL), SOCKET_ERROR;
    long n = syscall(SYS_sendto, fd, buf, (size_t)len, 0, to, (socklen_t)tolen);
    if (n >= 0) return (int)n;
    if (errno == EAGAIN || errno == ENOBUFS) arm_write(fd);
    return sock_fail();
}

/* int recvfrom(SOCKET s, char *buf, int len, int flags, struct sockaddr *from, int *fromlen)
 * — the datagram's length, or SOCKET_ERROR (WSAEWOULDBLOCK: nothing waiting). A datagram
 * longer than buf is WSAEMSGSIZE on Windows (the start is kept, the rest dropped): so here. */
API int ws_recvfrom(SOCKET s, char *buf, int len, int flags, void *from, int *fromlen)
    __asm__("recvfrom");
API int ws_recvfrom(SOCKET s, char *buf, int len, int flags, void *from, int *fromlen) {
    int fd = sock_fd(s);
    if (fd < 0) return SOCKET_ERROR;
    if (flags) return (wsa_error = WSAEINVAL), SOCKET_ERROR;
    socklen_t l = fromlen ? (socklen_t)*fromlen : 0;
    long n = syscall(SYS_recvfrom, fd, buf, (size_t)len, MSG_TRUNC, fromlen ? from : NULL,
                     fromlen ? &l : NULL);
    if (n < 0) return sock_fail();
    if (fromlen) *fromlen = (int)l;
    if (n > len) return (wsa_error = WSAEMSGSIZE), SOCKET_ERROR;
    return (int)n;
}

/* int closesocket(SOCKET s) */
API int closesocket(SOCKET s) {
    int fd = sock_fd(s);
    if (fd < 0) return SOCKET_ERROR;
    if (fd < MAX_SELECT_FD) __atomic_store_n(&write_events[fd], NULL, __ATOMIC_SEQ_CST);
    return close(fd) < 0 ? sock_fail() : 0;
}

/* WSAEVENT WSACreateEvent(void) — manual reset, not signalled (WSA_INVALID_EVENT: NULL) */
API HANDLE WSACreateEvent(void) {
    HANDLE h = CreateEventW(NULL, 1, 0, NULL);
    if (!h) wsa_error = WSAENOBUFS;
    return h;
}

/* BOOL WSACloseEvent(WSAEVENT) */
API BOOL WSACloseEvent(HANDLE h) {
    if (CloseHandle(h)) return 1;
    wsa_error = 6; /* WSA_INVALID_HANDLE */
    return 0;
}

/* BOOL WSAResetEvent(WSAEVENT) — the socket's FD_READ half is level-triggered (see above); an
 * FD_WRITE already due is recorded first and then reset with the event, so it is lost for
 * whoever waits on the event, as on Windows (the record keeps it for WSAEnumNetworkEvents). */
API BOOL WSAResetEvent(HANDLE h) {
    struct event *e = as_event(h);
    if (e) record_write(e);
    if (ResetEvent(h)) return 1;
    wsa_error = 6;
    return 0;
}

/* int WSAEnumNetworkEvents(SOCKET s, WSAEVENT hEventObject, LPWSANETWORKEVENTS lpNetworkEvents)
 * — the events recorded since the last call (FD_READ while the socket is readable, FD_WRITE
 * once recorded), clearing the record and resetting the event in one step. WSANETWORKEVENTS
 * is a 32-bit lNetworkEvents and ten int error codes (44 bytes), all zero here. */
API int WSAEnumNetworkEvents(SOCKET s, HANDLE h, void *out) {
    int fd = sock_fd(s);
    if (fd < 0) return SOCKET_ERROR;
    struct event *e = as_event(h);
    if (!e || !out) return (wsa_error = WSAEFAULT), SOCKET_ERROR;
    record_write(e);
    int32_t bits = 0;
    if (__atomic_exchange_n(&e->write_recorded, 0, __ATOMIC_SEQ_CST)) bits |= WS_FD_WRITE;
    if (e->tunfd >= 0) {
        struct pollfd p = {.fd = e->tunfd, .events = POLLIN};
        if (poll(&p, 1, 0) > 0 && (p.revents & POLLIN)) bits |= WS_FD_READ;
    }
    ResetEvent(h);
    memset(out, 0, 44);
    memcpy(out, &bits, sizeof bits);
    return 0;
}

/* int WSAEventSelect(SOCKET s, WSAEVENT hEventObject, long lNetworkEvents) — FD_READ and
 * FD_WRITE; 0 events unties the socket. FD_WRITE is signalled once at once (the socket can
 * send), then again only after a send failed with WSAEWOULDBLOCK and the socket has room. */
API int WSAEventSelect(SOCKET s, HANDLE h, int32_t events) {
    int fd = sock_fd(s);
    if (fd < 0) return SOCKET_ERROR;
    struct event *e = as_event(h);
    if (!e || !e->owned) return (wsa_error = 6), SOCKET_ERROR;
    if (events & ~(WS_FD_READ | WS_FD_WRITE)) return (wsa_error = WSAEINVAL), SOCKET_ERROR;
    if ((events & WS_FD_WRITE) && fd >= MAX_SELECT_FD) return (wsa_error = WSAEINVAL), SOCKET_ERROR;
    e->tunfd = (events & WS_FD_READ) ? fd : -1;
    e->writefd = (events & WS_FD_WRITE) ? fd : -1;
    __atomic_store_n(&e->write_armed, (events & WS_FD_WRITE) ? 1 : 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&e->write_recorded, 0, __ATOMIC_SEQ_CST);
    if (fd < MAX_SELECT_FD) {
        __atomic_store_n(&write_events[fd], (events & WS_FD_WRITE) ? e : NULL, __ATOMIC_SEQ_CST);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return sock_fail();
    return 0;
}

/* Socket options in Windows' numbering, mapped to Linux's: SOL_SOCKET (0xffff) SO_SNDBUF
 * (0x1001) and SO_RCVBUF (0x1002); IPPROTO_IP (0) IP_MTU_DISCOVER (71, a PMTUD_STATE: DO 1,
 * DONT 2, PROBE 3) and IP_MTU (73, get only). Returns 0, or -1 for an option not modelled. */
static int sockopt_map(int level, int name, int *linux_level, int *linux_name) {
    if (level == 0xffff && (name == 0x1001 || name == 0x1002)) {
        *linux_level = SOL_SOCKET;
        *linux_name = name == 0x1001 ? SO_SNDBUF : SO_RCVBUF;
        return 0;
    }
    if (level == 0 && (name == 71 || name == 73)) {
        *linux_level = IPPROTO_IP;
        *linux_name = name == 71 ? IP_MTU_DISCOVER : IP_MTU;
        return 0;
    }
    return -1;
}

/* int setsockopt(SOCKET s, int level, int optname, const char *optval, int optlen) — see
 * sockopt_map. Windows takes a buffer size as given; Linux doubles it for its bookkeeping. */
API int ws_setsockopt(SOCKET s, int level, int name, const char *val, int len)
    __asm__("setsockopt");
API int ws_setsockopt(SOCKET s, int level, int name, const char *val, int len) {
    int fd = sock_fd(s);
    if (fd < 0) return SOCKET_ERROR;
    int ll, ln;
    if (sockopt_map(level, name, &ll, &ln) < 0 || name == 73) {
        return (wsa_error = 10042), SOCKET_ERROR; /* WSAENOPROTOOPT */
    }
    int v;
    if (!val || len < (int)sizeof v) return (wsa_error = WSAEFAULT), SOCKET_ERROR;
    memcpy(&v, val, sizeof v);
    if (level == 0xffff) v /= 2; /* Linux doubles it: the effective size is what was asked */
    if (name == 71) {
        static const int linux_mode[] = {IP_PMTUDISC_WANT, IP_PMTUDISC_DO, IP_PMTUDISC_DONT,
                                         IP_PMTUDISC_PROBE};
        if (v < 0 || v > 3) return (wsa_error = WSAEINVAL), SOCKET_ERROR;
        v = linux_mode[v];
    }
    return syscall(SYS_setsockopt, fd, ll, ln, &v, (socklen_t)sizeof v) < 0 ? sock_fail() : 0;
}

/* int getsockopt(SOCKET s, int level, int optname, char *optval, int *optlen) — IP_MTU and
 * the buffer sizes (see sockopt_map). */
API int ws_getsockopt(SOCKET s, int level, int name, char *val, int *len) __asm__("getsockopt");
API int ws_getsockopt(SOCKET s, int level, int name, char *val, int *len) {
    int fd = sock_fd(s);
    if (fd < 0) return SOCKET_ERROR;
    int ll, ln;
    if (sockopt_map(level, name, &ll, &ln) < 0 || name == 71) {
        return (wsa_error = 10042), SOCKET_ERROR;
    }
    int v = 0;
    socklen_t l = sizeof v;
    if (!val || !len || *len < (int)sizeof v) return (wsa_error = WSAEFAULT), SOCKET_ERROR;
    /* Winsock says WSAENOTCONN for IP_MTU on an unconnected socket, as Linux does. */
    if (syscall(SYS_getsockopt, fd, ll, ln, &v, &l) < 0) {
        if (errno == ENOTCONN) return (wsa_error = 10057), SOCKET_ERROR; /* WSAENOTCONN */
        return sock_fail();
    }
    memcpy(val, &v, sizeof v);
    *len = sizeof v;
    return 0;
}

/* int connect(SOCKET s, const struct sockaddr *name, int namelen) — for UDP: fixes the peer */
API int ws_connect(SOCKET s, const void *name, int len) __asm__("connect");
API int ws_connect(SOCKET s, const void *name, int len) {
    int fd = sock_fd(s);
    if (fd < 0) return SOCKET_ERROR;
    return syscall(SYS_connect, fd, name, (socklen_t)len) < 0 ? sock_fail() : 0;
}

/* int send(SOCKET s, const char *buf, int len, int flags) — on a connected socket */
API int ws_send(SOCKET s, const char *buf, int len, int flags) __asm__("send");
API int ws_send(SOCKET s, const char *buf, int len, int flags) {
    int fd = sock_fd(s);
    if (fd < 0) return SOCKET_ERROR;
    if (flags) return (wsa_error = WSAEINVAL), SOCKET_ERROR;
    long n = syscall(SYS_sendto, fd, buf, (size_t)len, 0, NULL, 0);
    if (n >= 0) return (int)n;
    if (errno == EAGAIN || errno == ENOBUFS) arm_write(fd);
    return sock_fail();
}

/* int recv(SOCKET s, char *buf, int len, int flags) — on a connected socket. An ICMP error the
 * kernel queued on the socket comes out here: "port unreachable" as WSAECONNRESET (Windows'
 * SIO_UDP_CONNRESET behaviour), "fragmentation needed" as WSAEMSGSIZE, unless
 * FAKE_WINSOCK_HIDE_ICMP=1 (read at each call): then such errors are swallowed, and only
 * IP_MTU tells, for callers that must not rely on the error being reported. */
API int ws_recv(SOCKET s, char *buf, int len, int flags) __asm__("recv");
API int ws_recv(SOCKET s, char *buf, int len, int flags) {
    int fd = sock_fd(s);
    if (fd < 0) return SOCKET_ERROR;
    if (flags) return (wsa_error = WSAEINVAL), SOCKET_ERROR;
    for (;;) {
        long n = syscall(SYS_recvfrom, fd, buf, (size_t)len, MSG_TRUNC, NULL, NULL);
        if (n >= 0) {
            if (n > len) return (wsa_error = WSAEMSGSIZE), SOCKET_ERROR;
            return (int)n;
        }
        if (errno == ECONNREFUSED) return (wsa_error = WSAECONNRESET), SOCKET_ERROR;
        if (errno == EMSGSIZE) {
            const char *hide = getenv("FAKE_WINSOCK_HIDE_ICMP");
            if (hide && hide[0] == '1') continue; /* the error is consumed: read on */
        }
        return sock_fail();
    }
}
