//! The one forwarding style of the crate's ports.
//!
//! Every port trait is implemented for `&T`, `Arc<T>` and `Box<T>` (with `T: ?Sized`, so
//! `Arc<dyn Store>` works) by forwarding each method to the value behind the pointer. The
//! implementations are generated from the trait's method list, so a method added to a port
//! cannot be forgotten in one of the three.

/// `forward_port!(Trait { fn method(&self, arg: Ty) -> Ret; … })` implements `Trait` for
/// `&T`, `Arc<T>` and `Box<T>` where `T: Trait + ?Sized`.
macro_rules! forward_port {
    ($trait:ident { $(fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty;)* }) => {
        forward_port!(@impl $trait, &T { $(fn $name(&self $(, $arg: $ty)*) -> $ret;)* });
        forward_port!(@impl $trait, std::sync::Arc<T> { $(fn $name(&self $(, $arg: $ty)*) -> $ret;)* });
        forward_port!(@impl $trait, Box<T> { $(fn $name(&self $(, $arg: $ty)*) -> $ret;)* });
    };
    (@impl $trait:ident, $ptr:ty { $(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)* }) => {
        impl<T: $trait + ?Sized> $trait for $ptr {
            $(
                #[inline]
                fn $name(&self $(, $arg: $ty)*) -> $ret {
                    (**self).$name($($arg),*)
                }
            )*
        }
    };
}

/// Forwards the named [`Store`](crate::store::Store) and
/// [`LinkStore`](crate::store::LinkStore) methods to a field, inside an `impl` block: a
/// wrapper store (instrumented, fault-injecting, caching) writes the methods it changes and
/// forwards the rest in one line.
///
/// `forward_store!(field: method, method, …)` writes, for each method, the trait's
/// signature and a body calling the same method on `self.field` (a name, or an index for
/// tuple structs). A method of the trait neither written nor forwarded is a compile error,
/// so a wrapper cannot silently miss one; a method added to the port in a later release is
/// too, which is the point.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use bitcoin_checkout::store::{Commit, MemoryStore, Store, StoreError};
///
/// /// Counts commits, forwards everything.
/// struct Counting<S> {
///     inner: S,
///     commits: AtomicUsize,
/// }
///
/// impl<S: Store> Store for Counting<S> {
///     fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
///         self.commits.fetch_add(1, Ordering::Relaxed);
///         self.inner.commit(commit)
///     }
///
///     bitcoin_checkout::forward_store!(inner:
///         load, find_by_transfer, find_by_payment_hash, find_by_address, find_by_payment,
///         list, due, events_after, events_before, event, session_events,
///         session_events_after, held_transfers, prune_events, prune_session_events,
///         idempotency, claim_idempotency, release_idempotency, prune_idempotency);
/// }
///
/// let store = Counting { inner: MemoryStore::new(), commits: AtomicUsize::new(0) };
/// assert_eq!(store.load(bitcoin_checkout::SessionId::generate()), Ok(None));
/// ```
#[macro_export]
macro_rules! forward_store {
    ($field:tt : $($method:ident),+ $(,)?) => {
        $( $crate::forward_store!(@one $field $method); )+
    };
    (@one $f:tt load) => {
        fn load(&self, id: $crate::SessionId) -> ::std::result::Result<::std::option::Option<$crate::CheckoutSession>, $crate::store::StoreError> { self.$f.load(id) }
    };
    (@one $f:tt load_if_changed) => {
        fn load_if_changed(&self, id: $crate::SessionId, version: u64) -> ::std::result::Result<$crate::store::Reload, $crate::store::StoreError> { self.$f.load_if_changed(id, version) }
    };
    (@one $f:tt commit) => {
        fn commit(&self, commit: &$crate::store::Commit) -> ::std::result::Result<(), $crate::store::StoreError> { self.$f.commit(commit) }
    };
    (@one $f:tt find_by_transfer) => {
        fn find_by_transfer(&self, key: &$crate::TransferKey) -> ::std::result::Result<::std::option::Option<$crate::SessionId>, $crate::store::StoreError> { self.$f.find_by_transfer(key) }
    };
    (@one $f:tt find_by_payment_hash) => {
        fn find_by_payment_hash(&self, hash: &$crate::PaymentHash) -> ::std::result::Result<::std::option::Option<$crate::SessionId>, $crate::store::StoreError> { self.$f.find_by_payment_hash(hash) }
    };
    (@one $f:tt find_by_address) => {
        fn find_by_address(&self, address: &str) -> ::std::result::Result<::std::option::Option<$crate::SessionId>, $crate::store::StoreError> { self.$f.find_by_address(address) }
    };
    (@one $f:tt find_by_payment) => {
        fn find_by_payment(&self, id: $crate::PaymentId) -> ::std::result::Result<::std::option::Option<$crate::SessionId>, $crate::store::StoreError> { self.$f.find_by_payment(id) }
    };
    (@one $f:tt list) => {
        fn list(&self, query: &$crate::store::ListQuery) -> ::std::result::Result<$crate::store::Page, $crate::store::StoreError> { self.$f.list(query) }
    };
    (@one $f:tt due) => {
        fn due(&self, now: $crate::OffsetDateTime, limit: usize) -> ::std::result::Result<::std::vec::Vec<$crate::SessionId>, $crate::store::StoreError> { self.$f.due(now, limit) }
    };
    (@one $f:tt events_after) => {
        fn events_after(&self, after: ::std::option::Option<u64>, limit: usize) -> ::std::result::Result<::std::vec::Vec<$crate::store::StoredEvent>, $crate::store::StoreError> { self.$f.events_after(after, limit) }
    };
    (@one $f:tt events_before) => {
        fn events_before(&self, before: ::std::option::Option<u64>, limit: usize) -> ::std::result::Result<::std::vec::Vec<$crate::store::StoredEvent>, $crate::store::StoreError> { self.$f.events_before(before, limit) }
    };
    (@one $f:tt event) => {
        fn event(&self, id: $crate::EventId) -> ::std::result::Result<::std::option::Option<$crate::store::StoredEvent>, $crate::store::StoreError> { self.$f.event(id) }
    };
    (@one $f:tt session_events) => {
        fn session_events(&self, id: $crate::SessionId) -> ::std::result::Result<::std::vec::Vec<$crate::store::StoredEvent>, $crate::store::StoreError> { self.$f.session_events(id) }
    };
    (@one $f:tt held_transfers) => {
        fn held_transfers(&self, id: $crate::SessionId, limit: usize) -> ::std::result::Result<::std::vec::Vec<$crate::session::HeldTransfer>, $crate::store::StoreError> { self.$f.held_transfers(id, limit) }
    };
    (@one $f:tt prune_events) => {
        fn prune_events(&self, through: u64, limit: usize) -> ::std::result::Result<usize, $crate::store::StoreError> { self.$f.prune_events(through, limit) }
    };
    (@one $f:tt prune_session_events) => {
        fn prune_session_events(&self, id: $crate::SessionId, through: u64) -> ::std::result::Result<usize, $crate::store::StoreError> { self.$f.prune_session_events(id, through) }
    };
    (@one $f:tt prune_idempotency) => {
        fn prune_idempotency(&self, before: $crate::OffsetDateTime, limit: usize) -> ::std::result::Result<usize, $crate::store::StoreError> { self.$f.prune_idempotency(before, limit) }
    };
    (@one $f:tt session_events_after) => {
        fn session_events_after(&self, id: $crate::SessionId, after: ::std::option::Option<u64>, limit: usize) -> ::std::result::Result<::std::vec::Vec<$crate::store::StoredEvent>, $crate::store::StoreError> { self.$f.session_events_after(id, after, limit) }
    };
    (@one $f:tt idempotency) => {
        fn idempotency(&self, key: &str) -> ::std::result::Result<::std::option::Option<$crate::store::IdempotencyRecord>, $crate::store::StoreError> { self.$f.idempotency(key) }
    };
    (@one $f:tt claim_idempotency) => {
        fn claim_idempotency(&self, record: &$crate::store::IdempotencyRecord) -> ::std::result::Result<::std::option::Option<$crate::store::IdempotencyRecord>, $crate::store::StoreError> { self.$f.claim_idempotency(record) }
    };
    (@one $f:tt release_idempotency) => {
        fn release_idempotency(&self, record: &$crate::store::IdempotencyRecord) -> ::std::result::Result<(), $crate::store::StoreError> { self.$f.release_idempotency(record) }
    };
    (@one $f:tt never_blocks) => {
        fn never_blocks(&self) -> bool { self.$f.never_blocks() }
    };
    (@one $f:tt reads_never_block) => {
        fn reads_never_block(&self) -> bool { self.$f.reads_never_block() }
    };
    (@one $f:tt load_link) => {
        fn load_link(&self, id: $crate::link::LinkId) -> ::std::result::Result<::std::option::Option<$crate::link::Link>, $crate::store::StoreError> { self.$f.load_link(id) }
    };
    (@one $f:tt commit_link) => {
        fn commit_link(&self, commit: &$crate::store::LinkCommit) -> ::std::result::Result<(), $crate::store::StoreError> { self.$f.commit_link(commit) }
    };
    (@one $f:tt link_sessions) => {
        fn link_sessions(&self, id: $crate::link::LinkId) -> ::std::result::Result<::std::vec::Vec<$crate::SessionId>, $crate::store::StoreError> { self.$f.link_sessions(id) }
    };
    (@one $f:tt list_links) => {
        fn list_links(&self, query: &$crate::store::LinkListQuery) -> ::std::result::Result<$crate::store::LinkPage, $crate::store::StoreError> { self.$f.list_links(query) }
    };
}
