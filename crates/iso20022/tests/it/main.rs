//! pacs.008 and pacs.002 written and read back, and what strict reading refuses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod messages;
