// One call the RocksDB C API (7.8) lacks: flush several column families as ONE atomic flush.
// With `atomic_flush` set, `DB::Flush(options, handles)` switches the memtables of every family
// named at once and commits their SSTs in one MANIFEST edit, so after any crash either all of
// them reach that point or none does. `rocksdb_flush_cf` flushes one family only, and the C API
// has no multi-family flush (docs/adr/0010-write-path-v2.md). Only FaunaStore's RocksDB.swift
// calls this.
#pragma once
#include <rocksdb/c.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Flushes the memtables of `families[0..<count]` atomically and waits for the SSTs. On
/// failure `*errptr` is set to a malloc'ed message (free it with `rocksdb_free`), as the C API does.
void fauna_rocksdb_flush_families(
    rocksdb_t *db, rocksdb_column_family_handle_t *const *families, int count, char **errptr);

#ifdef __cplusplus
}
#endif
