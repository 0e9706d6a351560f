/*
 * The C API of batchflow's extension, as cffi sees it (cdef).
 *
 * One error convention: a function that can fail returns a negative value
 * and sets errno; agent/ext.py turns that into an exception in one place.
 */
struct bf_consumer;

struct bf_consumer_stats {
    uint64_t records;      /* records copied into batches */
    uint64_t bytes;        /* bytes of those records */
    uint64_t batches;      /* batches handed over */
    uint64_t polls;        /* calls to bf_consumer_poll */
    uint64_t wakeups;      /* polls that returned because the kernel woke us */
    uint64_t full_stops;   /* polls that stopped because the batch was full */
    uint64_t max_fill;     /* the most bytes seen waiting in the ring at once */
};

/* Maps the ring buffer behind `map_fd` (a BPF_MAP_TYPE_RINGBUF of
 * `ring_bytes` bytes) and allocates a batch of `batch_bytes`. */
int bf_consumer_open(int map_fd, size_t ring_bytes, size_t batch_bytes,
                     struct bf_consumer **out);

/* Waits up to timeout_ms for a wake-up (0: do not wait), then moves every
 * complete record from the ring into the batch, 8-byte aligned, until the
 * ring is empty or the batch is full.  Returns bytes now in the batch. */
long bf_consumer_poll(struct bf_consumer *c, int timeout_ms);

/* The batch collected so far; valid until bf_consumer_reset. */
const char *bf_consumer_batch(struct bf_consumer *c, size_t *len);
void bf_consumer_reset(struct bf_consumer *c);

/* Bytes currently waiting in the ring buffer. */
uint64_t bf_consumer_pending(struct bf_consumer *c);

void bf_consumer_stats(struct bf_consumer *c, struct bf_consumer_stats *out);
void bf_consumer_close(struct bf_consumer *c);
