/*
 * records.c - checks on raw record bytes (bpf/batchflow.h's layout).
 *
 * agent/events.py's whole_records is the reference: the journal asks it of
 * every batch it hands over raw (JournalRead.by_batch), and in Python that
 * walk was most of what reading a journal raw cost the rules.
 * tests/test_events_decode.py holds the two to the same answers.
 */
#include <stdint.h>
#include <string.h>

#include "batchflow_ext.h"
#include "filter.h"

int bf_whole_records(const char *buf, size_t len)
{
	size_t off = 0;
	while (off < len) {
		uint16_t size, path_len, argv_len;
		if (len - off < BF_HEADER_SIZE)
			return 0;
		memcpy(&size, buf + off + offsetof(struct bf_event, size), sizeof(size));
		memcpy(&path_len, buf + off + offsetof(struct bf_event, path_len), sizeof(path_len));
		memcpy(&argv_len, buf + off + offsetof(struct bf_event, argv_len), sizeof(argv_len));
		if (size < BF_HEADER_SIZE || size != (size_t)BF_HEADER_SIZE + path_len + argv_len ||
		    size > len - off)
			return 0;
		off += ((size_t)size + 7) & ~(size_t)7;
	}
	return 1;
}
