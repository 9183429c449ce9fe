//! A reader's window onto a list shared by a whole room: its first places and the reader's own
//! line. A big room's frames are encoded through windows straight from the one shared copy, so
//! no reader's list is copied to be cut.
//!
//! Owns the encoding of a window, which is exactly the encoding of the list it cuts (a reader
//! decodes the frame it always did); the frames' own windows are beside the frames. It must not
//! decide who is in a list or where.

use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};

/// Which lines of a frame's lists one reader is sent: the first `top` of each, then its own
/// line of the first list (`own[0]`) and of the second (`own[1]`), where those are further down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub top: usize,
    pub own: [Option<usize>; 2],
}

impl Cut {
    /// Every line.
    pub const ALL: Cut = Cut {
        top: usize::MAX,
        own: [None, None],
    };

    /// The first `top` lines and the reader's own.
    pub fn top_and(top: usize, own: [Option<usize>; 2]) -> Cut {
        Cut { top, own }
    }

    /// Whether this reader would see every line of lists `len` long.
    pub fn is_all(&self, len: usize) -> bool {
        self.top >= len
    }

    /// List `which` of a frame (0 or 1) as this reader is sent it.
    pub(super) fn list<'a, T>(&self, all: &'a [T], which: usize) -> Window<'a, T> {
        Window {
            all,
            top: self.top,
            own: self.own[which],
        }
    }
}

/// `all`'s first `top` entries, then entry `own` if it is not among them.
pub fn window<T: Clone>(all: &[T], top: usize, own: Option<usize>) -> Vec<T> {
    Window { all, top, own }.iter().cloned().collect()
}

/// A list as one reader is sent it; encodes as the `Vec` of those entries would.
pub(super) struct Window<'a, T> {
    all: &'a [T],
    top: usize,
    own: Option<usize>,
}

impl<'a, T> Window<'a, T> {
    pub(super) fn iter(&self) -> impl Iterator<Item = &'a T> + 'a {
        let all = self.all;
        let head = &all[..self.top.min(all.len())];
        let own = self.own.filter(|&i| i >= self.top).and_then(|i| all.get(i));
        head.iter().chain(own)
    }
}

impl<T: Serialize> Serialize for Window<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.iter().count()))?;
        for entry in self.iter() {
            seq.serialize_element(entry)?;
        }
        seq.end()
    }
}
