//! Finding external tools and the workspace paths.
