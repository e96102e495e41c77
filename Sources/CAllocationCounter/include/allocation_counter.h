#ifndef FAUNA_ALLOCATION_COUNTER_H
#define FAUNA_ALLOCATION_COUNTER_H
#include <stdint.h>
/// Number of heap allocations (malloc, calloc, realloc, aligned variants) made by this
/// process since it started. Benchmarks only: linking this target interposes malloc.
uint64_t fauna_allocation_count(void);
#endif
