/*
 * consumer.c - reads the BPF ring buffer straight from its mmap'ed pages.
 *
 * We read the ring ourselves rather than through libbpf's ring_buffer so that
 * a full batch stops consumption *before* a record is taken: libbpf marks a
 * record consumed even when the callback refuses it.  Records left in the ring
 * are either read at the next poll or, if the ring overflows, counted as lost
 * by the kernel side.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <stddef.h>
#include <unistd.h>
#include <linux/types.h>

#include "batchflow.h"
#include "batchflow_ext.h"

/* Where a record names its recording (bpf/batchflow.h). */
#define SLOT_OFFSET offsetof(struct bf_event, slot)

/* Ring-buffer record header bits (linux/bpf.h). */
#define RB_BUSY_BIT    (1U << 31)
#define RB_DISCARD_BIT (1U << 30)
#define RB_HDR_SZ      8

struct bf_consumer {
    int map_fd;
    int epfd;
    size_t page;
    size_t ring_bytes;
    unsigned long *consumer_pos;    /* read-write page */
    unsigned long *producer_pos;    /* read-only page, data follows */
    const char *data;
    char *batch;
    size_t batch_cap;
    size_t batch_len;
    struct bf_consumer_stats st;
    struct bf_filter *filter;       /* filter.c: when set, owns the batch */
    /* Routing (the resident agent): one batch per recording slot; once a
     * route is open, every record goes to its slot's batch. */
    struct bf_route *routes[BF_SLOTS];
    unsigned nroutes;
    unsigned mirror;                /* slot that also gets every record, 0: none */
};

struct bf_route {
    char *batch;
    size_t cap;
    size_t len;
    uint32_t only_uid;              /* BF_ANY_UID, or the one uid kept */
    uint64_t withheld;              /* records of another uid, dropped */
    uint64_t records;               /* records appended */
};

#define UID_OFFSET offsetof(struct bf_event, uid)

static inline size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

int bf_consumer_open(int map_fd, size_t ring_bytes, size_t batch_bytes,
                     struct bf_consumer **out)
{
    if (map_fd < 0 || ring_bytes == 0 || (ring_bytes & (ring_bytes - 1)) ||
        batch_bytes < 65536 || !out) {
        errno = EINVAL;
        return -1;
    }
    struct bf_consumer *c = calloc(1, sizeof(*c));
    if (!c)
        return -1;
    c->map_fd = map_fd;
    c->epfd = -1;
    c->page = (size_t)sysconf(_SC_PAGESIZE);
    c->ring_bytes = ring_bytes;
    c->batch_cap = batch_bytes;
    int saved;

    c->consumer_pos = mmap(NULL, c->page, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
    if (c->consumer_pos == MAP_FAILED) {
        c->consumer_pos = NULL;
        goto fail;
    }
    /* The data pages are mapped twice in a row by the kernel, so a record
     * that wraps around the end can be read in one piece. */
    void *p = mmap(NULL, c->page + 2 * ring_bytes, PROT_READ, MAP_SHARED, map_fd, c->page);
    if (p == MAP_FAILED)
        goto fail;
    c->producer_pos = p;
    c->data = (const char *)p + c->page;

    c->batch = malloc(batch_bytes);
    if (!c->batch)
        goto fail;
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (c->epfd < 0)
        goto fail;
    struct epoll_event ev = { .events = EPOLLIN };
    if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, map_fd, &ev) < 0)
        goto fail;
    *out = c;
    return 0;
fail:
    saved = errno;
    bf_consumer_close(c);
    errno = saved;
    return -1;
}

static int route_fits(const struct bf_route *r, size_t need)
{
    return !r || r->len + need <= r->cap;
}

static void route_append(struct bf_route *r, const char *rec, uint32_t size, size_t need)
{
    r->records++;
    memcpy(r->batch + r->len, rec, size);
    memset(r->batch + r->len + size, 0, need - size);
    r->len += need;
}

/* Copies a record to its recording's batch (and the mirror's); 0 when a
 * batch it belongs in is full (nothing copied).  A record of no open
 * recording (a straggler of one that ended) is counted and dropped. */
static int route_record(struct bf_consumer *c, const char *rec, uint32_t size)
{
    size_t need = align8(size);
    unsigned slot = size > SLOT_OFFSET ? (unsigned char)rec[SLOT_OFFSET] : 0;
    struct bf_route *own = c->routes[slot];
    struct bf_route *mirror = c->mirror && c->mirror != slot ? c->routes[c->mirror] : NULL;
    if (!route_fits(own, need) || !route_fits(mirror, need))
        return 0;
    if (!own && !mirror) {
        c->st.unrouted++;
        return 1;
    }
    if (own && own->only_uid != BF_ANY_UID && size >= BF_HEADER_SIZE) {
        uint32_t uid;
        memcpy(&uid, rec + UID_OFFSET, sizeof(uid));
        if (uid != own->only_uid) {
            own->withheld++;
            own = NULL;
            if (!mirror)
                return 1;
        }
    }
    if (own)
        route_append(own, rec, size, need);
    if (mirror)
        route_append(mirror, rec, size, need);
    c->st.records++;
    c->st.bytes += size;
    return 1;
}

static size_t routed_bytes(const struct bf_consumer *c)
{
    size_t n = 0;
    for (unsigned i = 0; i < BF_SLOTS; i++)
        if (c->routes[i])
            n += c->routes[i]->len;
    return n;
}

int bf_consumer_route(struct bf_consumer *c, unsigned slot, size_t batch_bytes,
                      uint32_t only_uid)
{
    if (slot >= BF_SLOTS || c->routes[slot] || batch_bytes < 65536) {
        errno = slot >= BF_SLOTS || batch_bytes < 65536 ? EINVAL : EEXIST;
        return -1;
    }
    struct bf_route *r = calloc(1, sizeof(*r));
    if (!r)
        return -1;
    r->batch = malloc(batch_bytes);
    if (!r->batch) {
        free(r);
        errno = ENOMEM;
        return -1;
    }
    r->cap = batch_bytes;
    r->only_uid = only_uid;
    c->routes[slot] = r;
    c->nroutes++;
    return 0;
}

int bf_consumer_unroute(struct bf_consumer *c, unsigned slot)
{
    if (slot >= BF_SLOTS || !c->routes[slot]) {
        errno = slot >= BF_SLOTS ? EINVAL : ENOENT;
        return -1;
    }
    free(c->routes[slot]->batch);
    free(c->routes[slot]);
    c->routes[slot] = NULL;
    c->nroutes--;
    if (c->mirror == slot)
        c->mirror = 0;
    return 0;
}

int bf_consumer_mirror(struct bf_consumer *c, unsigned slot)
{
    if (slot >= BF_SLOTS || (slot && !c->routes[slot])) {
        errno = slot >= BF_SLOTS ? EINVAL : ENOENT;
        return -1;
    }
    c->mirror = slot;
    return 0;
}

const char *bf_consumer_route_batch(struct bf_consumer *c, unsigned slot, size_t *len)
{
    if (slot >= BF_SLOTS || !c->routes[slot]) {
        *len = 0;
        return NULL;
    }
    *len = c->routes[slot]->len;
    return c->routes[slot]->batch;
}

void bf_consumer_route_reset(struct bf_consumer *c, unsigned slot)
{
    if (slot < BF_SLOTS && c->routes[slot]) {
        if (c->routes[slot]->len)
            c->st.batches++;
        c->routes[slot]->len = 0;
    }
}

int bf_consumer_route_counts(struct bf_consumer *c, unsigned slot, uint64_t *records,
                             uint64_t *withheld)
{
    if (slot >= BF_SLOTS || !c->routes[slot]) {
        errno = slot >= BF_SLOTS ? EINVAL : ENOENT;
        return -1;
    }
    *records = c->routes[slot]->records;
    *withheld = c->routes[slot]->withheld;
    return 0;
}

uint64_t bf_consumer_produced(struct bf_consumer *c)
{
    return __atomic_load_n(c->producer_pos, __ATOMIC_ACQUIRE);
}

uint64_t bf_consumer_consumed(struct bf_consumer *c)
{
    return __atomic_load_n(c->consumer_pos, __ATOMIC_ACQUIRE);
}

uint64_t bf_consumer_pending(struct bf_consumer *c)
{
    unsigned long prod = __atomic_load_n(c->producer_pos, __ATOMIC_ACQUIRE);
    unsigned long cons = __atomic_load_n(c->consumer_pos, __ATOMIC_ACQUIRE);
    return prod - cons;
}

long bf_consumer_poll(struct bf_consumer *c, int timeout_ms)
{
    c->st.polls++;
    if (timeout_ms != 0) {
        struct epoll_event ev;
        int n = epoll_wait(c->epfd, &ev, 1, timeout_ms);
        if (n < 0 && errno != EINTR)
            return -1;
        if (n > 0)
            c->st.wakeups++;
    }
    unsigned long cons = __atomic_load_n(c->consumer_pos, __ATOMIC_ACQUIRE);
    unsigned long prod = __atomic_load_n(c->producer_pos, __ATOMIC_ACQUIRE);
    if (prod - cons > c->st.max_fill)
        c->st.max_fill = prod - cons;
    size_t mask = c->ring_bytes - 1;
    while (cons < prod) {
        const uint32_t *hdr = (const uint32_t *)(c->data + (cons & mask));
        uint32_t len = __atomic_load_n(hdr, __ATOMIC_ACQUIRE);
        if (len & RB_BUSY_BIT)
            break;                       /* producer still writing it */
        uint32_t size = len & ~(RB_BUSY_BIT | RB_DISCARD_BIT);
        if (!(len & RB_DISCARD_BIT) && c->nroutes) {
            if (!route_record(c, (const char *)hdr + RB_HDR_SZ, size)) {
                c->st.full_stops++;
                break;                   /* leave it in the ring */
            }
            cons += align8(size + RB_HDR_SZ);
            __atomic_store_n(c->consumer_pos, cons, __ATOMIC_RELEASE);
            if (cons >= prod)
                prod = __atomic_load_n(c->producer_pos, __ATOMIC_ACQUIRE);
            continue;
        }
        if (!(len & RB_DISCARD_BIT) && c->filter) {
            /* ---- filter.c hook: DISCARD / FOCUS / RULE_ON ---- */
            int v = bf_filter_offer(c->filter, (const char *)hdr + RB_HDR_SZ, size);
            if (v < 0)
                return -1;
            if (v == BF_V_FULL) {
                c->st.full_stops++;
                break;                   /* leave it in the ring */
            }
            c->st.records++;
            c->st.bytes += size;
            cons += align8(size + RB_HDR_SZ);
            __atomic_store_n(c->consumer_pos, cons, __ATOMIC_RELEASE);
            if (v == BF_V_URGENT)
                break;                   /* hand it over now */
            if (cons >= prod)
                prod = __atomic_load_n(c->producer_pos, __ATOMIC_ACQUIRE);
            continue;
        }
        if (!(len & RB_DISCARD_BIT)) {
            size_t need = align8(size);
            if (c->batch_len + need > c->batch_cap) {
                c->st.full_stops++;
                break;                   /* leave it in the ring */
            }
            memcpy(c->batch + c->batch_len, (const char *)hdr + RB_HDR_SZ, size);
            memset(c->batch + c->batch_len + size, 0, need - size);
            c->batch_len += need;
            c->st.records++;
            c->st.bytes += size;
        }
        cons += align8(size + RB_HDR_SZ);
        __atomic_store_n(c->consumer_pos, cons, __ATOMIC_RELEASE);
        if (cons >= prod)
            prod = __atomic_load_n(c->producer_pos, __ATOMIC_ACQUIRE);
    }
    if (c->nroutes)
        return (long)routed_bytes(c);
    if (c->filter) {
        size_t n;
        bf_filter_batch(c->filter, &n);
        return (long)n;
    }
    return (long)c->batch_len;
}

const char *bf_consumer_batch(struct bf_consumer *c, size_t *len)
{
    if (c->filter)
        return bf_filter_batch(c->filter, len);
    *len = c->batch_len;
    return c->batch;
}

void bf_consumer_reset(struct bf_consumer *c)
{
    if (c->filter) {
        size_t n;
        bf_filter_batch(c->filter, &n);
        if (n)
            c->st.batches++;
        bf_filter_reset(c->filter);
        return;
    }
    if (c->batch_len)
        c->st.batches++;
    c->batch_len = 0;
}

void bf_consumer_set_filter(struct bf_consumer *c, struct bf_filter *f)
{
    c->filter = f;
}

void bf_consumer_stats(struct bf_consumer *c, struct bf_consumer_stats *out)
{
    *out = c->st;
}

void bf_consumer_close(struct bf_consumer *c)
{
    if (!c)
        return;
    if (c->epfd >= 0)
        close(c->epfd);
    if (c->producer_pos)
        munmap(c->producer_pos, c->page + 2 * c->ring_bytes);
    if (c->consumer_pos)
        munmap(c->consumer_pos, c->page);
    for (unsigned i = 0; i < BF_SLOTS; i++)
        if (c->routes[i]) {
            free(c->routes[i]->batch);
            free(c->routes[i]);
        }
    free(c->batch);
    free(c);
}
