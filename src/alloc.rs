//! The process allocator: mimalloc, called the way its size classes work best.
//!
//! The `mimalloc` crate's `GlobalAlloc` passes every request to `mi_malloc_aligned`, even
//! with the 8-byte alignment almost every Rust type asks for. mimalloc 3 serves such a
//! request from its fast path only when a page of the right size class already has a
//! free block; otherwise (always, for a class no plain `malloc` opened, and each time a
//! page fills up) it over-allocates `size + align - 1` bytes: a 188-byte znode then
//! takes a 224-byte block instead of a 192-byte one (the 1M-znode RSS grew by ~32 MB),
//! and every such allocation takes the slow path. Every mimalloc block is at least
//! 8-byte aligned (block sizes are multiples of 8 from aligned page starts), so requests
//! with alignment <= 8 go to the plain entry points; larger alignments keep the aligned
//! ones.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment every mimalloc block has.
const PLAIN_ALIGN: usize = std::mem::size_of::<usize>();

/// mimalloc with plain calls for ordinary alignments (see the module docs).
pub struct Allocator;

// SAFETY: every call forwards to mimalloc with a size and an alignment mimalloc honours:
// plain calls only where all its blocks are aligned enough, aligned calls otherwise;
// frees and reallocs go to the allocator that made the block (mimalloc's `mi_free` and
// `mi_realloc` take blocks from either entry point).
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc takes any size; the alignment is honoured (see the impl).
        unsafe {
            if layout.align() <= PLAIN_ALIGN {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if layout.align() <= PLAIN_ALIGN {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: GlobalAlloc's contract: `ptr` came from this allocator (mimalloc).
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (GlobalAlloc's contract);
        // mimalloc reallocates blocks of either entry point, keeping the alignment.
        unsafe {
            if layout.align() <= PLAIN_ALIGN {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}
