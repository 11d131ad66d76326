//! Layouts shared by skmem's eBPF programs and their loader (placeholder).
#![no_std]
