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
