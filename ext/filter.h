/*
 * filter.h - constants private to filter.c; the bytecode numbers must match
 * agent/conditions/language.py, the limits agent/control/codes.py.
 */
#ifndef BF_FILTER_H
#define BF_FILTER_H

#define BFF_HEADER 80            /* BF_HEADER_SIZE of bpf/batchflow.h */
#define BFF_KIND_FORK 3
#define BFF_KIND_EXIT 5
#define BFF_CLONE_THREAD 0x10000
#define BFF_TRUNC_MASK 0x07

#define BFF_MIN_BATCH (BFF_HEADER + 4096 + 8192)  /* the largest record the kernel writes */

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
