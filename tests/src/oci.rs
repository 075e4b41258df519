//! Building OCI images with umoci and buildah for tests.
