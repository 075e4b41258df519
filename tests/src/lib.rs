//! Test harness: builds test apps and OCI images with real tools (umoci, buildah), and
//! says in one line why a test is skipped when a tool or seL4 is missing; runs a throwaway
//! registry (docker-registry) and a tampering proxy for the registry tests.

pub mod oci;
pub mod registry;
pub mod apps;
pub mod compare;
pub mod debian;
pub mod sel4;
pub mod tools;
