/*
 * filter.h - constants private to filter.c; the bytecode numbers must match
 * agent/conditions/language.py, the limits agent/control/codes.py (both
 * checked by tests/test_abi.py).
 */
#ifndef BF_FILTER_H
#define BF_FILTER_H

/* The record is bpf/batchflow.h's, read through offsetof(struct bf_event, ...);
 * that header speaks the kernel's fixed-width types, which linux/types.h
 * gives user space. */
#include <stddef.h>
#include <linux/types.h>
#include "batchflow.h"

_Static_assert(sizeof(struct bf_event) == BF_HEADER_SIZE, "struct bf_event is the record header");

#define BFF_TRUNC_MASK (BF_TRUNC_PATH | BF_TRUNC_ARG | BF_TRUNC_ARGC)
#define BFF_MIN_BATCH sizeof(struct bf_record)   /* the largest record the kernel writes */

#define BFF_MAX_NODES 512        /* binary nodes: twice the tree nodes condition.py allows */
#define BFF_MAX_VALUES 65536
#define BFF_MAX_STRINGS (256 * 4096)

enum {
	BFF_OP_TRUE, BFF_OP_FALSE, BFF_OP_AND, BFF_OP_OR, BFF_OP_NOT,
	BFF_OP_PID, BFF_OP_TID, BFF_OP_UID, BFF_OP_COMM, BFF_OP_KIND,
	BFF_OP_PATH_EQ, BFF_OP_PATH_PREFIX, BFF_OP_PATH_GLOB,
	BFF_OP_RES_OK, BFF_OP_RES_ERR, BFF_OP_RES_ERRNO,
};
#define BFF_FLAG_DESC 1

#endif
