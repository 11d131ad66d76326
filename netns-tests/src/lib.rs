//! Harness for skmem's integration tests on veth pairs between network
//! namespaces. Placeholder until the AF_XDP data-path issue lands.
