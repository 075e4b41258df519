//! selkie: OCI images in, seL4 apps out.
//!
//! - [`reference`] and [`source`] read images (OCI layouts, docker archives, registries
//!   through the [`cache`]) and verify every blob; [`platform`] picks the manifest for a platform.
//! - [`rootfs`] flattens layers into a newc cpio without extracting anything to disk.
//! - [`runtime`] turns the image config into the container manifest's app entry.
//! - [`elf`] checks the entrypoint and plans its resources; [`syscalls`] rewrites its `svc`s.
//! - [`pack`], [`inspect`], [`build`] (a Dockerfile through buildah) and [`sdk`] (the SDK builder image) are the commands; [`transfer`] pulls and pushes images and
//!   bootable seL4 images through registries.

pub mod boot;
pub mod build;
pub mod compose;
pub mod cache;
pub mod digest;
pub mod elf;
pub mod inspect;
pub mod loader;
pub mod pack;
pub mod platform;
pub mod progress;
pub mod reference;
pub mod rootfs;
pub mod runtime;
pub mod sdcard;
pub mod sdk;
pub mod source;
pub mod syscalls;
pub mod transfer;
