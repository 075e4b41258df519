//! Building the aarch64 test apps in tests/apps.
