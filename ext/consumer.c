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
#include <unistd.h>

#include "batchflow_ext.h"

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
};

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
    free(c->batch);
    free(c);
}
