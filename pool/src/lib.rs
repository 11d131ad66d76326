//! skmem placeholder
