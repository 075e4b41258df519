#![no_std]
#![no_main]
use sel4_root_task::{root_task, Never};
#[root_task(heap_size = 1 << 20)]
fn main(_bootinfo: &sel4::BootInfoPtr) -> sel4::Result<Never> {
    sel4::debug_println!("hi");
    sel4::init_thread::suspend_self()
}
