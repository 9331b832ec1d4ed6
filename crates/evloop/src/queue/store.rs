//! The order a queue hands items out in: asyncio's `_init` / `_put` / `_get`, the three methods
//! `PriorityQueue` and `LifoQueue` override, as a trait.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Where a [`GenericQueue`](crate::queue::GenericQueue) keeps its items, and so which comes out
/// first. Implement it for an order of your own, as asyncio subclasses override `_put`/`_get`.
///
/// ```
/// use evloop::queue::{GenericQueue, Store};
///
/// /// Hands out the shortest string first.
/// #[derive(Default)]
/// struct Shortest(Vec<String>);
///
/// impl Store for Shortest {
///     type Item = String;
///     fn len(&self) -> usize {
///         self.0.len()
///     }
///     fn push(&mut self, item: String) {
///         self.0.push(item);
///         self.0.sort_by_key(|s| std::cmp::Reverse(s.len()));
///     }
///     fn pop(&mut self) -> Option<String> {
///         self.0.pop()
///     }
/// }
///
/// let queue = GenericQueue::<Shortest>::new(0);
/// queue.put_nowait("three".to_owned()).unwrap();
/// queue.put_nowait("one".to_owned()).unwrap();
/// assert_eq!(queue.get_nowait().unwrap(), "one");
/// ```
pub trait Store: Default {
    /// What the queue holds.
    type Item;
    /// How many items are stored.
    fn len(&self) -> usize;
    /// Whether no item is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Stores an item.
    fn push(&mut self, item: Self::Item);
    /// Takes the next item out, if any.
    fn pop(&mut self) -> Option<Self::Item>;
}

/// First in, first out: [`Queue`](crate::queue::Queue)'s order.
#[derive(Debug)]
pub struct Fifo<T>(VecDeque<T>);

/// Last in, first out: [`LifoQueue`](crate::queue::LifoQueue)'s order.
#[derive(Debug)]
pub struct Lifo<T>(Vec<T>);

/// Smallest first (asyncio's heapq order): [`PriorityQueue`](crate::queue::PriorityQueue)'s.
#[derive(Debug)]
pub struct Priority<T: Ord>(BinaryHeap<Reverse<T>>);

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo(VecDeque::new())
    }
}

impl<T> Default for Lifo<T> {
    fn default() -> Self {
        Lifo(Vec::new())
    }
}

impl<T: Ord> Default for Priority<T> {
    fn default() -> Self {
        Priority(BinaryHeap::new())
    }
}

impl<T> Store for Fifo<T> {
    type Item = T;
    fn len(&self) -> usize {
        self.0.len()
    }
    fn push(&mut self, item: T) {
        self.0.push_back(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop_front()
    }
}

impl<T> Store for Lifo<T> {
    type Item = T;
    fn len(&self) -> usize {
        self.0.len()
    }
    fn push(&mut self, item: T) {
        self.0.push(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
}

impl<T: Ord> Store for Priority<T> {
    type Item = T;
    fn len(&self) -> usize {
        self.0.len()
    }
    fn push(&mut self, item: T) {
        self.0.push(Reverse(item));
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop().map(|Reverse(item)| item)
    }
}
