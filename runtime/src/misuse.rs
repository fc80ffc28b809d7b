//! [`Misuse`]: the typed error inside an [`io::Error`] when greenio is
//! called in a way it does not support, so a caller can tell "you called
//! this in the wrong place" from an error of the network.

use std::error::Error;
use std::fmt;
use std::io;

/// A call greenio refused because of where or how it was made, carried as
/// the inner error of an [`io::Error`] of kind
/// [`Other`](io::ErrorKind::Other). [`Misuse::of`] finds it.
///
/// # Examples
///
/// Parking on a socket needs a runtime; on a plain thread the call fails
/// with [`Misuse::OutsideRuntime`] (`greenio::net::Misuse` is this type):
///
/// ```
/// use greenio::net::TcpListener;
/// use greenio::Misuse;
///
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let err = listener.accept().unwrap_err(); // nobody connects: it would park
/// assert_eq!(Misuse::of(&err), Some(Misuse::OutsideRuntime));
/// assert!(err.to_string().contains("greenio::run"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Misuse {
    /// Called outside a runtime, where no hub can park the caller: call it
    /// inside `greenio::run` (or a green thread it spawned).
    OutsideRuntime,
    /// The socket (or `Signals`) belongs to another hub than the caller's:
    /// give each hub its own handle (`try_clone`, one `Signals` per hub).
    OtherHub,
    /// A call that must wait, made on a hub's thread but outside any green
    /// thread (from a reactor callback, say): spawn a green thread for it,
    /// or use the `try_` variant.
    OutsideGreenThread,
}

impl Misuse {
    /// The misuse `err` carries, or `None` for any other error.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::Misuse;
    /// use std::io;
    ///
    /// let err = io::Error::from(Misuse::OtherHub);
    /// assert_eq!(Misuse::of(&err), Some(Misuse::OtherHub));
    /// assert_eq!(Misuse::of(&io::Error::other("network")), None);
    /// ```
    pub fn of(err: &io::Error) -> Option<Misuse> {
        err.get_ref()?.downcast_ref::<Misuse>().copied()
    }
}

impl fmt::Display for Misuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Misuse::OutsideRuntime => {
                "greenio: socket call that must wait, outside a runtime; \
                 call it inside greenio::run (a green thread)"
            }
            Misuse::OtherHub => {
                "greenio: socket is in use by a green thread of another hub; \
                 give each hub its own handle (try_clone)"
            }
            Misuse::OutsideGreenThread => {
                "greenio: blocking call on a hub thread outside a green thread; \
                 call it inside greenio::run or a spawned green thread"
            }
        })
    }
}

impl Error for Misuse {}

impl From<Misuse> for io::Error {
    fn from(m: Misuse) -> io::Error {
        io::Error::other(m)
    }
}
