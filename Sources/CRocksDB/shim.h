// The RocksDB C API (Debian librocksdb-dev). Only FaunaStore's RocksDB*.swift wrapper files
// may import this module: everything above the wrapper uses Swift types.
#pragma once
#include <rocksdb/c.h>
