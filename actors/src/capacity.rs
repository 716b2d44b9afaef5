//! Capacity that a crowd left behind: Rust's maps and vectors never shrink by themselves, so a
//! table that grew for a connection storm keeps room for the storm after it left (measured: the
//! Registry's and the Router's session tables held 1.6 MB for 2,000 sessions that were gone).
//!
//! [`shrink_sparse`] shrinks a collection once it is at most a quarter full, to twice what it
//! holds. Between two shrinks it must lose three quarters of its entries, and between a shrink
//! and the next growth it must double, so the rehash costs O(1) per insertion or removal,
//! amortised; the check itself is two loads. Small collections are left alone.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash};

/// Below this capacity a collection is not worth shrinking.
const MIN_CAPACITY: usize = 128;

/// A collection whose spare capacity can be given back.
pub trait Shrink {
    /// How many entries it holds, and how many it has room for.
    fn len_and_capacity(&self) -> (usize, usize);
    fn shrink_to(&mut self, capacity: usize);
}

/// Shrinks `collection` to twice its length when it is at most a quarter full.
pub fn shrink_sparse<C: Shrink>(collection: &mut C) {
    let (len, capacity) = collection.len_and_capacity();
    if capacity >= MIN_CAPACITY && len <= capacity / 4 {
        collection.shrink_to(len * 2);
    }
}

impl<K: Eq + Hash, V, S: BuildHasher> Shrink for HashMap<K, V, S> {
    fn len_and_capacity(&self) -> (usize, usize) {
        (self.len(), self.capacity())
    }
    fn shrink_to(&mut self, capacity: usize) {
        HashMap::shrink_to(self, capacity);
    }
}

impl<T: Eq + Hash, S: BuildHasher> Shrink for HashSet<T, S> {
    fn len_and_capacity(&self) -> (usize, usize) {
        (self.len(), self.capacity())
    }
    fn shrink_to(&mut self, capacity: usize) {
        HashSet::shrink_to(self, capacity);
    }
}

impl<T> Shrink for Vec<T> {
    fn len_and_capacity(&self) -> (usize, usize) {
        (self.len(), self.capacity())
    }
    fn shrink_to(&mut self, capacity: usize) {
        Vec::shrink_to(self, capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_that_emptied_gives_its_room_back() {
        let mut map: HashMap<u64, [u8; 200]> = (0..2000).map(|k| (k, [0; 200])).collect();
        assert!(map.capacity() >= 2000);
        for k in 0..2000 {
            map.remove(&k);
            shrink_sparse(&mut map);
        }
        assert!(
            map.capacity() < MIN_CAPACITY,
            "an empty table keeps no more than a small one: {}",
            map.capacity()
        );
    }

    #[test]
    fn shrinks_only_when_a_quarter_full_and_keeps_room_to_double() {
        let mut list: Vec<u32> = Vec::with_capacity(1024);
        list.extend(0..257);
        shrink_sparse(&mut list);
        assert_eq!(list.capacity(), 1024, "more than a quarter full");
        list.truncate(256);
        shrink_sparse(&mut list);
        assert_eq!(list.capacity(), 512, "a quarter full: twice its length");
        list.truncate(129);
        shrink_sparse(&mut list);
        assert_eq!(
            list.capacity(),
            512,
            "more than a quarter of the new capacity"
        );
        list.truncate(128);
        shrink_sparse(&mut list);
        assert_eq!(list.capacity(), 256);
    }

    #[test]
    fn small_collections_are_left_alone() {
        let mut set: HashSet<u32> = HashSet::with_capacity(100);
        set.insert(1);
        let capacity = set.capacity();
        shrink_sparse(&mut set);
        assert_eq!(set.capacity(), capacity);
    }
}
