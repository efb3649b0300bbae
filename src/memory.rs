//! Giving the memory a load freed back to the operating system.
//!
//! Loading a model allocates several times what it keeps: the parsed
//! file, validation's scratch, the sort of a million resources. The server
//! allocates with mimalloc (see `main.rs`), which keeps freed pages for
//! reuse and returns them only while the allocator is busy; an idle
//! sidecar, just restarted, would hold hundreds of megabytes it no longer
//! uses. So after a full load the server asks for them to be returned now.
//!
//! Transparent huge pages are off for the process (mimalloc's `no_thp`
//! feature, Cargo.toml): mimalloc would ask for them on its arena, and a
//! 2 MB page counts whole as soon as one byte of it is used. On the `large`
//! model that was 14 MB more resident (74 MB against 60) for no throughput
//! we could measure (BENCHMARKS.md).

/// Returns the pages mimalloc holds free to the OS. It takes milliseconds,
/// so it is called after whole-model loads, not after small deltas. Harmless
/// when mimalloc is not the global allocator (tests, benchmarks): its heaps
/// are then empty.
#[allow(unsafe_code)] // the crate's only unsafe: mimalloc has no safe wrapper for it
pub fn release_freed() {
    // SAFETY: `mi_collect` takes no pointers and may be called from any
    // thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
