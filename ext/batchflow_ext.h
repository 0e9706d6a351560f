/*
 * The C API of batchflow's extension, as cffi sees it (cdef).
 *
 * One error convention: a function that can fail returns a negative value
 * and sets errno; agent/capture/native.py turns that into an exception in one place.
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
    uint64_t unrouted;     /* routing: records of no open recording, dropped */
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
/* The ring's positions: everything reserved before produced() was read
 * once consumed() has reached it. */
uint64_t bf_consumer_produced(struct bf_consumer *c);
uint64_t bf_consumer_consumed(struct bf_consumer *c);

void bf_consumer_stats(struct bf_consumer *c, struct bf_consumer_stats *out);
void bf_consumer_close(struct bf_consumer *c);

/* Routing (the resident agent, several recordings on one ring): once a
 * route is open, each record goes to the batch of the recording slot it
 * carries (struct bf_event's `slot`), and the filter is not used.  A batch
 * that is full stops the poll (the record stays in the ring); a record of a
 * slot with no route is dropped and counted in `unrouted`.  The mirror
 * slot (a whole-host recording) also gets a copy of every record.
 * bf_consumer_poll then returns the bytes in all routes' batches. */
#define BF_ANY_UID 0xffffffff
/* `only_uid`: the route keeps only records of that (real) uid, counting the
 * others as withheld (a non-root user's recording); BF_ANY_UID keeps all. */
int bf_consumer_route(struct bf_consumer *c, unsigned slot, size_t batch_bytes,
                      uint32_t only_uid);
/* Records a route has received so far, and records it withheld (another uid). */
int bf_consumer_route_counts(struct bf_consumer *c, unsigned slot, uint64_t *records,
                             uint64_t *withheld);
int bf_consumer_unroute(struct bf_consumer *c, unsigned slot);
int bf_consumer_mirror(struct bf_consumer *c, unsigned slot);
const char *bf_consumer_route_batch(struct bf_consumer *c, unsigned slot, size_t *len);
void bf_consumer_route_reset(struct bf_consumer *c, unsigned slot);

/* ==== filter.c: DISCARD / FOCUS / RULE_ON between the ring and the batch ====
 * agent/control/reference.py is the specification; agent/control/codes.py
 * repeats these numbers for Python. */
#define BF_RULE_DISCARD 1
#define BF_RULE_FOCUS 2
#define BF_RULE_ON 3

#define BF_V_KEEP 0      /* appended to the batch */
#define BF_V_DROP 1      /* discarded (or not an event), counted */
#define BF_V_HOLD 2      /* held for a ruling */
#define BF_V_URGENT 3    /* appended; hand the batch over now */
#define BF_V_FULL 4      /* no room: nothing changed, take the batch and offer again */

#define BF_REPORT_DISCARD 1
#define BF_REPORT_HELD 2
#define BF_REPORT_OVERFLOW 3
#define BF_REPORT_TRUNCATED 4
#define BF_REPORT_MALFORMED 5

#define BF_FILTER_MAX_RULES 256
#define BF_PIDSET_MAX 65536

struct bf_filter;

struct bf_filter_report {
    uint32_t what;         /* BF_REPORT_* */
    uint32_t rule;         /* 0 for TRUNCATED and MALFORMED */
    uint64_t count;
    uint64_t ts_lo;        /* first and last timestamps counted */
    uint64_t ts_hi;
};

struct bf_filter_stats {
    uint64_t seen, kept, dropped, held, focused, overflow, expired, released;
    uint64_t late, truncated, malformed, set_full;
    uint64_t held_now, held_bytes, watermark, rules;
};

int bf_filter_new(size_t batch_bytes, size_t hold_count, size_t hold_bytes,
                  struct bf_filter **out);
void bf_filter_free(struct bf_filter *f);
/* `prog` is the bytecode of agent/conditions/language.py compile_program. */
int bf_filter_add(struct bf_filter *f, uint32_t id, int type, uint64_t lo, uint64_t hi,
                  uint64_t hold_ns, const char *prog, size_t prog_len);
int bf_filter_remove(struct bf_filter *f, uint32_t id);
/* Returns a BF_V_* verdict, or -1 (errno) when memory ran out. */
int bf_filter_offer(struct bf_filter *f, const char *rec, size_t size);
/* Offers each record of `buf` (8-byte aligned records, as batches hold them)
 * until the batch is full; returns how many were taken, *used the bytes. */
long bf_filter_offer_batch(struct bf_filter *f, const char *buf, size_t len, size_t *used);
/* Moves due held records into the batch; returns how many due ones did not fit. */
long bf_filter_release(struct bf_filter *f, uint64_t now);
const char *bf_filter_batch(struct bf_filter *f, size_t *len);
void bf_filter_reset(struct bf_filter *f);
/* 1 once if a FOCUS matched since the last call. */
int bf_filter_urgent(struct bf_filter *f);
uint64_t bf_filter_watermark(struct bf_filter *f, uint64_t upto);
/* Drains up to `max` pending reports; returns how many were written. */
long bf_filter_reports(struct bf_filter *f, struct bf_filter_report *out, size_t max);
void bf_filter_stats(struct bf_filter *f, struct bf_filter_stats *out);

/* consumer.c: with a filter attached, every record goes through it and the
 * batch is the filter's (bf_consumer_batch / _reset pass through). */
void bf_consumer_set_filter(struct bf_consumer *c, struct bf_filter *f);
/* ==== end of filter.c ==== */

/* ==== turtle.c: the Turtle writer's hot records in C ====
 * agent/graph/turtle.py's TurtleWriter (its fused Python loop) is the
 * reference; agent/capture/native.py's TurtleFast drives this state.
 * Every text fragment comes from Python; bf_tw_feed stops at the first
 * record it cannot write (reason BF_TW_OTHER) for Python to take. */
struct bf_tw;

#define BF_TW_READS 1          /* open flags: the access reads (prov:used) */
#define BF_TW_WRITES 2         /* the access writes (prov:wasGeneratedBy) */
#define BF_TW_TMPFILE 4        /* O_TMPFILE: the fd names no file */
#define BF_TW_CLOEXEC 8        /* O_CLOEXEC */
#define BF_TW_MODE 16          /* the mode argument is written (O_CREAT, O_TMPFILE) */

#define BF_TW_KNOW_USED 1      /* bf_tw_know: the process's prov:used of it is written */
#define BF_TW_KNOW_GENERATED 2 /* ... its prov:wasGeneratedBy */

#define BF_TW_END 0            /* bf_tw_run.reason: every record written */
#define BF_TW_OTHER 1          /* stopped at a record for Python */
#define BF_TW_FULL 2           /* stopped: the output buffer wants writing out */

struct bf_tw_run {
    size_t offset;         /* in: where to start; out: the record it stopped at */
    uint64_t idx;          /* in/out: the next event index */
    uint64_t deadline;     /* in: a record later than this stops (held events are due) */
    uint64_t last_ts;      /* out: time of the last record written */
    uint64_t records, opens, stats, closes;   /* out: records taken, by kind */
    uint64_t fd_changes, prev_changes;        /* out: waiting for bf_tw_sync_fds / _procs */
    int reason;            /* out: BF_TW_* */
};

struct bf_tw_fd {          /* one fd table change: ref_id -1 = closed */
    uint32_t pid;
    int64_t fd;
    int64_t ref_id;
    int cloexec;
};

struct bf_tw_prev {        /* a process's main thread's last event */
    uint32_t pid;
    uint64_t prev;
};

int bf_tw_new(struct bf_tw **out);
void bf_tw_free(struct bf_tw *w);
int bf_tw_set_head(struct bf_tw *w, unsigned kind, unsigned call, const char *text, size_t len);
int bf_tw_set_open_flags(struct bf_tw *w, int64_t flags, const char *frag, size_t len,
                         uint32_t bits);
int bf_tw_set_stat_flags(struct bf_tw *w, int64_t flags, const char *frag, size_t len);
int bf_tw_set_end(struct bf_tw *w, int64_t ret, const char *frag, size_t len);
int bf_tw_set_path(struct bf_tw *w, const char *key, size_t klen, int64_t ref_id,
                   const char *frag, size_t len);
void bf_tw_clear_paths(struct bf_tw *w);
/* cwd_len -1: the cwd is not known; fresh: another process than before under pid */
int bf_tw_set_proc(struct bf_tw *w, uint32_t pid, const char *tag, size_t tag_len,
                   uint64_t prev, const char *cwd, int64_t cwd_len, int fresh);
int bf_tw_drop_proc(struct bf_tw *w, uint32_t pid);
int bf_tw_know(struct bf_tw *w, uint32_t pid, int64_t ref_id, uint32_t bits);
int bf_tw_feed(struct bf_tw *w, const char *buf, size_t len, struct bf_tw_run *run);
const char *bf_tw_output(struct bf_tw *w, size_t *len);
void bf_tw_output_reset(struct bf_tw *w);
long bf_tw_sync_fds(struct bf_tw *w, struct bf_tw_fd *out, size_t max);
long bf_tw_sync_procs(struct bf_tw *w, struct bf_tw_prev *out, size_t max);
/* ==== end of turtle.c ==== */

/* ---- the rules' hot records (ext/rules_fast.c; driver: agent/rules/fast.py) ----
 * bf_rf_feed handles what changes only counts, logs what rules must see
 * one by one (see the file's head) and stops at the first other record; Python tells it what it learnt
 * (bf_rf_set_*) and takes what changed here (bf_rf_sync_*). */
struct bf_rf;

#define BF_RF_MISSING 1        /* bf_rf_rules: the rules that read opens and stats */
#define BF_RF_DATAFLOW 2
#define BF_RF_COLLISION 4
#define BF_RF_HOTSPOT 8
#define BF_RF_A_READS 1        /* bf_rf_set_flags: an open's access (rules' Read/Execute) */
#define BF_RF_A_WRITES 2       /* Write or ReadWrite */
#define BF_RF_A_TMPFILE 4      /* O_TMPFILE: no fd table entry */
#define BF_RF_A_CLOEXEC 8
#define BF_RF_A_STAT 16        /* neither (O_PATH, a stat) */
#define BF_RF_T_WRITTEN 1      /* bf_rf_set_target: dataflow has a writer of it */
#define BF_RF_T_TRACKED 2      /* hot-spot counts who probes it */
#define BF_RF_T_WATCHED 4      /* dataflow notes its writers (not under an ignored prefix) */
#define BF_RF_ROW -1            /* bf_rf_logged.target: the whole record goes through Python's interpreter */
#define BF_RF_END 0            /* bf_rf_run.reason: every record handled */
#define BF_RF_OTHER 1          /* stopped at a record Python must handle */

struct bf_rf_run {
    uint64_t offset, idx;          /* in/out: where to start; the next event index */
    uint64_t deadline;             /* in: stop at a record after this time (held events);
                                      UINT64_MAX: nothing held (forks may be rows) */
    uint64_t until_check;          /* in/out: hot-spot's probes before its next check */
    uint64_t last_ts, max_open_ts; /* out: the last record's time; the latest open's (in/out) */
    uint64_t opens, stats, closes; /* out: records handled, by kind */
    uint64_t rows;                 /* out: records logged for Python's interpreter */
    uint64_t resume;               /* out: stopped: where a record C may take could be next */
    uint64_t pending_procs, pending_fds, pending_probes, pending_evidence, pending_makers,
             pending_log;
                                   /* out: what bf_rf_sync_* have to hand over */
    uint32_t reason;
};

struct bf_rf_last {        /* a process's main thread's last event handled here */
    uint32_t pid;
    uint64_t last;
};

struct bf_rf_fd {          /* one fd table change: ref -1 = no entry */
    uint32_t pid;
    int32_t ref;
    int64_t fd;
    int32_t cloexec;
};

struct bf_rf_probes {      /* hot-spot probes of a target made here */
    int32_t target;
    uint64_t count, last_ts;
};

struct bf_rf_logged {      /* a record handled here that the rules must see: Python builds it */
    uint64_t offset, idx;          /* in the batch fed; its event index */
    int32_t target;                /* BF_RF_ROW: rows, the interpreter's (see rules_fast.c) */
    uint32_t fds;                  /* the fd changes (bf_rf_sync_fds, in order) made before it */
    uint64_t end;                  /* rows: where the span of rows next to each other ends */
};

struct bf_rf_evidence {    /* a probe of a path that has fewer than min_n: its index */
    int32_t target;
    uint64_t idx;
};

struct bf_rf_maker {       /* count probes of a target by (pid << 3 | kind) in a row */
    int32_t target;
    uint64_t maker, count;
};

int bf_rf_new(struct bf_rf **out);
void bf_rf_free(struct bf_rf *rf);
void bf_rf_rules(struct bf_rf *rf, unsigned rules, uint64_t track_from, uint64_t min_n);
int bf_rf_set_flags(struct bf_rf *rf, int64_t flags, unsigned access);
int bf_rf_set_target(struct bf_rf *rf, int32_t target, uint64_t n, unsigned flags,
                     const char *path, size_t path_len);
int bf_rf_set_path(struct bf_rf *rf, const char *key, size_t klen, int32_t ref, int32_t target);
void bf_rf_clear_paths(struct bf_rf *rf);
int bf_rf_set_proc(struct bf_rf *rf, uint32_t pid, const char *cwd, int64_t cwd_len,
                   const char *names, size_t names_len);
int bf_rf_drop_proc(struct bf_rf *rf, uint32_t pid);
int bf_rf_forget_fds(struct bf_rf *rf, uint32_t pid, int64_t fd);   /* fd -1: all */
int bf_rf_set_fd(struct bf_rf *rf, uint32_t pid, int64_t fd, int32_t target, int cloexec);
int bf_rf_pids(struct bf_rf *rf, const uint32_t *pids, size_t n, int taken);
int bf_rf_feed(struct bf_rf *rf, const char *buf, size_t len, struct bf_rf_run *run);
long bf_rf_sync_procs(struct bf_rf *rf, struct bf_rf_last *out, size_t max);
long bf_rf_sync_fds(struct bf_rf *rf, struct bf_rf_fd *out, size_t max);
long bf_rf_sync_targets(struct bf_rf *rf, struct bf_rf_probes *out, size_t max);
long bf_rf_sync_log(struct bf_rf *rf, struct bf_rf_logged *out, size_t max);
long bf_rf_sync_evidence(struct bf_rf *rf, struct bf_rf_evidence *out, size_t max);
long bf_rf_sync_makers(struct bf_rf *rf, struct bf_rf_maker *out, size_t max);

/* records.c: 1 when buf[0..len) is back-to-back whole records (each size
 * field at least a header, equal to the header plus its two lengths, within
 * len; records 8-byte aligned), as agent.events.whole_records answers. */
int bf_whole_records(const char *buf, size_t len);
