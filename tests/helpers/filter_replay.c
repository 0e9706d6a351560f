/*
 * filter_replay.c - replays a script of filter operations through
 * ext/filter.c, for valgrind and the sanitizers (no Python in the way),
 * and prints one line per output so the test can compare it with the
 * Python reference.
 *
 *   filter_replay SCRIPT BATCH_BYTES HOLD_COUNT HOLD_BYTES
 *
 * Script records (native endian): one op byte, then
 *   'A' u32 id, u8 type, u64 lo, u64 hi, u64 hold_ns, u32 len, len bytes of bytecode
 *   'R' u32 id      'O' u32 len, len bytes      'L' u64 now
 *   'T'             'W' u64 upto                'P'
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchflow_ext.h"

static uint64_t fnv(const void *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ull;
	return h;
}

#define GET(v) do { if (fread(&(v), sizeof(v), 1, f) != 1) goto trunc; } while (0)

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: filter_replay SCRIPT BATCH_BYTES HOLD_COUNT HOLD_BYTES\n");
		return 2;
	}
	FILE *f = fopen(argv[1], "rb");
	if (!f) {
		perror(argv[1]);
		return 2;
	}
	struct bf_filter *flt;
	if (bf_filter_new(strtoull(argv[2], 0, 10), strtoull(argv[3], 0, 10),
			  strtoull(argv[4], 0, 10), &flt) < 0) {
		perror("bf_filter_new");
		return 2;
	}
	char *buf = malloc(1 << 20);
	struct bf_filter_report rep[7];
	int op;
	while ((op = fgetc(f)) != EOF) {
		uint32_t id, len;
		uint64_t a, b, c;
		uint8_t type;
		switch (op) {
		case 'A':
			GET(id); GET(type); GET(a); GET(b); GET(c); GET(len);
			if (len > (1 << 20) || fread(buf, 1, len, f) != len)
				goto trunc;
			printf("add %d\n", bf_filter_add(flt, id, type, a, b, c, buf, len));
			break;
		case 'R':
			GET(id);
			printf("remove %d\n", bf_filter_remove(flt, id));
			break;
		case 'O': {
			GET(len);
			if (len > (1 << 20) || fread(buf, 1, len, f) != len)
				goto trunc;
			int v = bf_filter_offer(flt, buf, len);
			if (v == BF_V_FULL) {
				size_t n;
				const char *p = bf_filter_batch(flt, &n);
				printf("batch %zu %016llx\n", n, (unsigned long long)fnv(p, n));
				bf_filter_reset(flt);
				v = bf_filter_offer(flt, buf, len);
			}
			printf("offer %d\n", v);
			break;
		}
		case 'L':
			GET(a);
			printf("release %ld\n", bf_filter_release(flt, a));
			break;
		case 'T': {
			size_t n;
			const char *p = bf_filter_batch(flt, &n);
			printf("batch %zu %016llx\n", n, (unsigned long long)fnv(p, n));
			bf_filter_reset(flt);
			break;
		}
		case 'W':
			GET(a);
			printf("watermark %llu\n", (unsigned long long)bf_filter_watermark(flt, a));
			break;
		case 'P': {
			long n;
			/* a small buffer on purpose: draining in several calls */
			while ((n = bf_filter_reports(flt, rep, 7)) > 0) {
				for (long i = 0; i < n; i++)
					printf("report %u %u %llu %llu %llu\n", rep[i].what, rep[i].rule,
					       (unsigned long long)rep[i].count,
					       (unsigned long long)rep[i].ts_lo,
					       (unsigned long long)rep[i].ts_hi);
				if (n < 7)
					break;
			}
			break;
		}
		default:
			fprintf(stderr, "bad op %d\n", op);
			return 2;
		}
	}
	struct bf_filter_stats st;
	bf_filter_stats(flt, &st);
	printf("stats %llu %llu %llu %llu %llu\n", (unsigned long long)st.seen,
	       (unsigned long long)st.dropped, (unsigned long long)st.held,
	       (unsigned long long)st.overflow, (unsigned long long)st.held_now);
	/* leave rules, held records and reports in place: free must take them all */
	bf_filter_free(flt);
	free(buf);
	fclose(f);
	return 0;
trunc:
	fprintf(stderr, "truncated script\n");
	return 2;
}
