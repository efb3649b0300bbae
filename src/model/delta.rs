//! Deltas: added with the Admin API.
