// libFuzzer's driver entry point (compiler-rt FuzzerInterface.h), declared here so Swift can
// call it with the C calling convention. Only referenced by rpc-fuzz built with -DFUZZING,
// where -sanitize=fuzzer links the runtime that defines it.
#ifndef FAUNA_FUZZER_DRIVER_H
#define FAUNA_FUZZER_DRIVER_H
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
