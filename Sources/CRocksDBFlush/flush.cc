// See include/fauna_rocksdb_flush.h. The C API's handles are structs holding one pointer to
// the C++ object (rocksdb/db/c.cc: `struct rocksdb_t { DB* rep; }`, and the same for column
// family handles); they are declared here with that layout. CrashKillTests (the `flushed` step)
// checks the behaviour this relies on — a process killed right after this flush keeps every
// family's writes — against the librocksdb the build links, so a layout change fails the tests.
#include "fauna_rocksdb_flush.h"

#include <rocksdb/db.h>

#include <cstdlib>
#include <cstring>
#include <vector>

struct rocksdb_t {
    rocksdb::DB *rep;
};
struct rocksdb_column_family_handle_t {
    rocksdb::ColumnFamilyHandle *rep;
};

extern "C" void fauna_rocksdb_flush_families(
    rocksdb_t *db, rocksdb_column_family_handle_t *const *families, int count, char **errptr) {
    std::vector<rocksdb::ColumnFamilyHandle *> handles;
    handles.reserve(count > 0 ? count : 0);
    for (int i = 0; i < count; i++) handles.push_back(families[i]->rep);
    rocksdb::FlushOptions options;
    options.wait = true;
    rocksdb::Status status = db->rep->Flush(options, handles);
    if (!status.ok()) {
        std::string message = status.ToString();
        char *copy = static_cast<char *>(std::malloc(message.size() + 1));
        if (copy != nullptr) std::memcpy(copy, message.c_str(), message.size() + 1);
        *errptr = copy;
    }
}
