//! A heap buffer whose start and capacity are multiples of an alignment, for O_DIRECT
//! writes (the kernel refuses a direct write from memory that is not aligned to the
//! device's direct-I/O memory alignment). The only unsafe code of the txn log writer.

use std::alloc::Layout;
use std::ptr::NonNull;

/// An owned, aligned byte buffer of fixed capacity holding `len` bytes.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    layout: Layout,
    len: usize,
}

// SAFETY: an AlignedBuf owns its allocation alone (as a Vec<u8> does) and hands out
// references only through &self / &mut self, so moving it to another thread is sound.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    /// An empty buffer of at least `capacity` bytes (rounded up to `align`), starting at
    /// an address that is a multiple of `align` (a power of two).
    pub fn with_capacity(capacity: usize, align: usize) -> AlignedBuf {
        assert!(align.is_power_of_two(), "alignment {align}");
        let size = capacity.max(1).next_multiple_of(align);
        let layout = Layout::from_size_align(size, align).expect("buffer layout");
        // SAFETY: the layout's size is at least `align`, so not zero.
        let raw = unsafe { std::alloc::alloc(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        AlignedBuf {
            ptr,
            layout,
            len: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.layout.size()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Replaces the contents with `data`, which must fit the capacity.
    pub fn fill(&mut self, data: &[u8]) {
        assert!(
            data.len() <= self.capacity(),
            "{} bytes into a buffer of {}",
            data.len(),
            self.capacity()
        );
        // SAFETY: the allocation holds `capacity` bytes, at least `data.len()`; `data` is
        // a shared borrow, so it cannot overlap the buffer we own exclusively.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr(), data.len());
        }
        self.len = data.len();
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the first `len` bytes were written by `fill` (len <= capacity), and the
        // allocation lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc` with this very layout and is freed only here.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_and_capacity_are_aligned_and_contents_kept() {
        for (capacity, align) in [(0, 512), (1, 4096), (4096, 4096), (10_000, 4096), (3, 64)] {
            let mut buf = AlignedBuf::with_capacity(capacity, align);
            assert_eq!(buf.as_slice().as_ptr() as usize % align, 0);
            assert_eq!(buf.capacity() % align, 0);
            assert!(buf.capacity() >= capacity.max(1));
            assert!(buf.is_empty());
            let data: Vec<u8> = (0..capacity).map(|i| (i % 251) as u8).collect();
            buf.fill(&data);
            assert_eq!(buf.len(), capacity);
            assert_eq!(buf.as_slice(), &data[..]);
            buf.fill(&data[..capacity / 2]);
            assert_eq!(buf.as_slice(), &data[..capacity / 2]);
        }
    }

    #[test]
    fn a_buffer_moves_to_another_thread() {
        let mut buf = AlignedBuf::with_capacity(8192, 4096);
        buf.fill(b"across threads");
        let back = std::thread::spawn(move || {
            assert_eq!(buf.as_slice(), b"across threads");
            buf
        })
        .join()
        .unwrap();
        assert_eq!(back.len(), 14);
    }

    #[test]
    #[should_panic(expected = "into a buffer of")]
    fn overfilling_panics() {
        let mut buf = AlignedBuf::with_capacity(10, 512);
        buf.fill(&[0; 513]);
    }
}
