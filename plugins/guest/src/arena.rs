//! The call arena: an allocator for provider plugins.
//!
//! Everything a provider allocates lives for one call at most: the arguments
//! the host copies in, the buffers the provider builds, and the results the
//! bindings free once the host has read them. So the arena bumps a pointer
//! and counts live allocations; when the count drops to zero (after the
//! call's results are freed) it wipes every byte the call used and starts
//! again at its base. That is cheaper than a general-purpose allocator, and
//! it wipes what `Zeroizing` cannot reach: the argument copies and the result
//! buffers the bindings free, which in a reused instance would otherwise hold
//! data keys until overwritten.
//!
//! What a provider keeps between calls (a decoded key, say) must live in a
//! `static`, not on the heap: a heap allocation that outlives its call only
//! postpones the wipe, and the arena grows until it is freed.

use core::alloc::Layout;
use core::ptr;
use core::sync::atomic::{Ordering, compiler_fence};

/// Where the arena's bytes come from.
pub trait Memory {
    /// One past the last usable address.
    fn end(&self) -> usize;
    /// Makes the memory usable up to at least `end`; false if it cannot.
    fn grow_to(&mut self, end: usize) -> bool;
}

/// A bump allocator over `[base, memory.end())` that wipes and rewinds when
/// nothing is live.
pub struct Arena<M> {
    memory: M,
    base: usize,
    /// Next free address.
    top: usize,
    /// Highest address handed out since the last rewind: what the wipe covers.
    high: usize,
    /// Allocations not yet freed.
    live: usize,
}

impl<M: Memory> Arena<M> {
    /// An arena from `base`, which must be the start of writable memory that
    /// nothing else uses, up to wherever `memory` can grow.
    pub const fn new(memory: M, base: usize) -> Self {
        Self {
            memory,
            base,
            top: base,
            high: base,
            live: 0,
        }
    }

    /// Null when the memory cannot grow to fit the request.
    pub fn alloc(&mut self, layout: Layout) -> *mut u8 {
        let Some(start) = align_up(self.top, layout.align()) else {
            return ptr::null_mut();
        };
        let Some(end) = start.checked_add(layout.size()) else {
            return ptr::null_mut();
        };
        if !self.ensure(end) {
            return ptr::null_mut();
        }
        self.top = end;
        self.live += 1;
        start as *mut u8
    }

    /// # Safety
    /// `ptr` and `layout` come from an earlier [`Arena::alloc`] (or
    /// [`Arena::realloc`]) of this arena that was not freed yet.
    pub unsafe fn dealloc(&mut self, ptr: *mut u8, layout: Layout) {
        let start = ptr as usize;
        // The latest allocation gives its space back at once.
        if start + layout.size() == self.top {
            self.top = start;
        }
        self.live -= 1;
        if self.live == 0 {
            // SAFETY: [base, high) is this arena's memory and nothing in it
            // is live any more.
            unsafe { ptr::write_bytes(self.base as *mut u8, 0, self.high - self.base) };
            // The wipe must happen even though nothing reads the bytes.
            compiler_fence(Ordering::SeqCst);
            self.top = self.base;
            self.high = self.base;
        }
    }

    /// Grows or shrinks the latest allocation in place; moves any other.
    ///
    /// # Safety
    /// As for [`Arena::dealloc`]; `new_size`, rounded up to `layout.align()`,
    /// does not overflow `isize`.
    pub unsafe fn realloc(&mut self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let start = ptr as usize;
        if start + layout.size() == self.top {
            let Some(end) = start.checked_add(new_size) else {
                return ptr::null_mut();
            };
            if !self.ensure(end) {
                return ptr::null_mut();
            }
            self.top = end;
            return ptr;
        }
        // SAFETY: the caller guarantees the layout is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = self.alloc(new_layout);
        if !new.is_null() {
            // SAFETY: both blocks are live and distinct; the copy stays
            // within the smaller one.
            unsafe {
                ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }

    /// Allocations not yet freed.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Bytes between the base and the high-water mark of this call.
    pub fn used(&self) -> usize {
        self.high - self.base
    }

    fn ensure(&mut self, end: usize) -> bool {
        if end > self.memory.end() && !self.memory.grow_to(end) {
            return false;
        }
        self.high = self.high.max(end);
        true
    }
}

fn align_up(addr: usize, align: usize) -> Option<usize> {
    Some(addr.checked_add(align - 1)? & !(align - 1))
}

/// The component's linear memory above the linker's `__heap_base`.
#[cfg(target_arch = "wasm32")]
pub mod linear {
    use core::alloc::{GlobalAlloc, Layout};
    use core::arch::wasm32;
    use core::cell::UnsafeCell;

    use super::{Arena, Memory};

    const PAGE: usize = 64 << 10;

    pub struct LinearMemory;

    impl Memory for LinearMemory {
        fn end(&self) -> usize {
            wasm32::memory_size(0) * PAGE
        }

        fn grow_to(&mut self, end: usize) -> bool {
            let pages = end.div_ceil(PAGE) - wasm32::memory_size(0);
            wasm32::memory_grow(0, pages) != usize::MAX
        }
    }

    unsafe extern "C" {
        /// Set by the linker: the first address past the stack and data.
        static __heap_base: u8;
    }

    /// The global allocator of a plugin:
    /// `#[global_allocator] static A: CallArena = CallArena::new();`
    pub struct CallArena(UnsafeCell<Option<Arena<LinearMemory>>>);

    // SAFETY: a component instance runs on one thread (wasm32 without the
    // threads proposal), so the arena is never shared between threads.
    unsafe impl Sync for CallArena {}

    impl CallArena {
        pub const fn new() -> Self {
            Self(UnsafeCell::new(None))
        }

        #[allow(clippy::mut_from_ref)]
        fn arena(&self) -> &mut Arena<LinearMemory> {
            // SAFETY: one thread, and the allocator is not reentrant, so
            // this is the only reference while it is in use.
            let slot = unsafe { &mut *self.0.get() };
            slot.get_or_insert_with(|| {
                let base = (&raw const __heap_base) as usize;
                Arena::new(LinearMemory, base)
            })
        }
    }

    impl Default for CallArena {
        fn default() -> Self {
            Self::new()
        }
    }

    // SAFETY: the arena returns distinct, aligned blocks of the asked size
    // (or null), and frees only what it handed out.
    unsafe impl GlobalAlloc for CallArena {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            self.arena().alloc(layout)
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { self.arena().dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            unsafe { self.arena().realloc(ptr, layout, new_size) }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec;

    use super::*;

    /// A fixed buffer whose usable part grows in 1 KiB steps up to a limit.
    struct Buffer {
        start: usize,
        usable: usize,
        limit: usize,
    }

    impl Memory for Buffer {
        fn end(&self) -> usize {
            self.start + self.usable
        }

        fn grow_to(&mut self, end: usize) -> bool {
            let needed = (end - self.start).next_multiple_of(1024);
            if needed > self.limit {
                return false;
            }
            self.usable = needed;
            true
        }
    }

    fn arena(bytes: &mut [u8]) -> Arena<Buffer> {
        let start = bytes.as_mut_ptr() as usize;
        let memory = Buffer {
            start,
            usable: 0,
            limit: bytes.len(),
        };
        Arena::new(memory, start)
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn allocations_are_aligned_and_do_not_overlap() {
        let mut bytes = vec![0u8; 4096].into_boxed_slice();
        let mut arena = arena(&mut bytes);
        let a = arena.alloc(layout(3, 1)) as usize;
        let b = arena.alloc(layout(8, 8)) as usize;
        let c = arena.alloc(layout(5, 4)) as usize;
        assert_eq!(b % 8, 0);
        assert_eq!(c % 4, 0);
        assert!(a + 3 <= b && b + 8 <= c);
        assert_eq!(arena.live(), 3);
    }

    #[test]
    fn the_last_free_wipes_every_byte_the_call_used_and_rewinds() {
        let mut bytes = vec![0u8; 4096].into_boxed_slice();
        let mut arena = arena(&mut bytes);
        let first = arena.alloc(layout(32, 1));
        let second = arena.alloc(layout(64, 1));
        unsafe {
            ptr::write_bytes(first, 0xAA, 32);
            ptr::write_bytes(second, 0xBB, 64);
            arena.dealloc(first, layout(32, 1));
        }
        // Something is still live: nothing is wiped yet.
        assert_eq!(unsafe { *first }, 0xAA);
        unsafe { arena.dealloc(second, layout(64, 1)) };
        assert_eq!(arena.live(), 0);
        assert_eq!(arena.used(), 0);
        let used = unsafe { core::slice::from_raw_parts(first, 96) };
        assert!(used.iter().all(|&b| b == 0), "the call's bytes were wiped");
        assert_eq!(arena.alloc(layout(1, 1)), first, "rewound to the base");
    }

    #[test]
    fn the_latest_allocation_grows_in_place_and_others_move_with_their_bytes() {
        let mut bytes = vec![0u8; 4096].into_boxed_slice();
        let mut arena = arena(&mut bytes);
        let a = arena.alloc(layout(4, 1));
        unsafe { ptr::copy_nonoverlapping(b"abcd".as_ptr(), a, 4) };
        let grown = unsafe { arena.realloc(a, layout(4, 1), 16) };
        assert_eq!(grown, a, "the latest allocation grows in place");
        let b = arena.alloc(layout(4, 1));
        let moved = unsafe { arena.realloc(a, layout(16, 1), 32) };
        assert_ne!(moved, a);
        assert!(moved as usize >= b as usize + 4);
        assert_eq!(unsafe { core::slice::from_raw_parts(moved, 4) }, b"abcd");
        assert_eq!(arena.live(), 2);
    }

    #[test]
    fn a_request_the_memory_cannot_hold_is_refused_with_null() {
        let mut bytes = vec![0u8; 2048].into_boxed_slice();
        let mut arena = arena(&mut bytes);
        assert!(!arena.alloc(layout(1500, 1)).is_null());
        assert!(arena.alloc(layout(1000, 1)).is_null());
        assert!(arena.alloc(layout(isize::MAX as usize - 8, 1)).is_null());
        assert_eq!(arena.live(), 1, "a refused request is not counted");
    }

    #[test]
    fn freeing_an_earlier_block_keeps_the_later_ones_intact() {
        let mut bytes = vec![0u8; 4096].into_boxed_slice();
        let mut arena = arena(&mut bytes);
        let a = arena.alloc(layout(8, 1));
        let b = arena.alloc(layout(8, 1));
        unsafe {
            ptr::write_bytes(b, 0x5A, 8);
            arena.dealloc(a, layout(8, 1));
        }
        let c = arena.alloc(layout(8, 1));
        assert!(
            c as usize >= b as usize + 8,
            "a freed block in the middle is not reused"
        );
        assert_eq!(unsafe { *b }, 0x5A);
    }
}
