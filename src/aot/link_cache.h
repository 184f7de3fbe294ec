// The linked libraries kept in kiln's object cache (objects/<link key>.so), so that a warm
// compile of a large model keeps or copies its library instead of linking it again.
//
// A fresh entry is a hard link to the model.so it was linked as, not a copy: on the
// development VM copying BERT-base's library (438 MB) into the cache was half of a cold
// compile (docs/perf.md, session 24). Output and entry then share an inode, so a later write
// into model.so in place would change the entry too: each entry has a sidecar
// (<entry>.xxh3, the XXH3 hash of its bytes) that is checked before the entry is used, and an
// entry that fails the check is dropped (the library is linked again).
#pragma once

#include <filesystem>

namespace kiln::aot {

/// Whether the cached library `linked` exists and holds the bytes it was stored with; an entry
/// that does not is removed with its sidecar. Entries without a sidecar (stored as copies by
/// an older kiln) are trusted while no other name links to them.
bool cachedLibraryUsable(const std::filesystem::path &linked);

/// Whether `out` already is the cached library (the same file, or the same bytes): then nothing
/// needs writing, and `out` is touched as a rewrite would have (build tools compare times).
bool alreadyThere(const std::filesystem::path &linked, const std::filesystem::path &out);

/// Throws the user's error for an output that cannot be written: the file and errno's
/// reason, flagged as a full disk or file size limit where it is one (shared by the builder).
[[noreturn]] void writeFailed(const std::filesystem::path &p, int err);

/// Copies (never links: `out` is a path of the user's, where a later build may write in
/// place) the cached library to the temporary output tmpOut; a failed write names `out` and
/// its reason, and leaves nothing behind.
void copyFromCache(const std::filesystem::path &linked, const std::filesystem::path &tmpOut,
                   const std::filesystem::path &out);

/// Makes the freshly linked tmpOut (about to become model.so) the cache entry `linked`: a hard
/// link where the file system allows, else a copy, with its sidecar. A failure only costs the
/// next compile a link.
void storeInCache(const std::filesystem::path &tmpOut, const std::filesystem::path &linked);

} // namespace kiln::aot
