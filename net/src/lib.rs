//! greenio's sockets: calls that look blocking but park the green thread
//! on its hub's mio loop.
#![deny(missing_docs, missing_debug_implementations)]
