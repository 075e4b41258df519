//! The ELF plan, loading with relocation, and the initial stack, on handmade ELFs.

use musl_shim::mm::MemoryMap;
use musl_shim::start::*;
use musl_shim::testing::FakePlatform;
use musl_shim::GuestMemory;

fn put(b: &mut Vec<u8>, off: usize, v: &[u8]) {
    if b.len() < off + v.len() {
        b.resize(off + v.len(), 0);
    }
    b[off..off + v.len()].copy_from_slice(v);
}

/// A minimal aarch64 ELF: ET_EXEC at 0x400000 or ET_DYN at 0; a R-X PT_LOAD holding the
/// headers and code, a RW PT_LOAD (with bss) at +0x10000, PT_TLS, PT_GNU_STACK, and for
/// ET_DYN a PT_DYNAMIC with one R_AARCH64_RELATIVE at the data segment.
fn elf(pie: bool) -> Vec<u8> {
    let base: u64 = if pie { 0 } else { 0x40_0000 };
    let phnum: u16 = if pie { 5 } else { 4 };
    let mut b = vec![0u8; 0x200];
    put(&mut b, 0, b"\x7fELF\x02\x01\x01");
    put(&mut b, 16, &(if pie { 3u16 } else { 2u16 }).to_le_bytes());
    put(&mut b, 18, &183u16.to_le_bytes()); // EM_AARCH64
    put(&mut b, 20, &1u32.to_le_bytes());
    put(&mut b, 24, &(base + 0x100).to_le_bytes()); // e_entry
    put(&mut b, 32, &64u64.to_le_bytes()); // e_phoff
    put(&mut b, 52, &64u16.to_le_bytes());
    put(&mut b, 54, &56u16.to_le_bytes());
    put(&mut b, 56, &phnum.to_le_bytes());
    put(&mut b, 58, &64u16.to_le_bytes());
    let ph = |b: &mut Vec<u8>, i: usize, ty: u32, flags: u32, off: u64, va: u64, filesz: u64, memsz: u64| {
        let o = 64 + 56 * i;
        put(b, o, &ty.to_le_bytes());
        put(b, o + 4, &flags.to_le_bytes());
        put(b, o + 8, &off.to_le_bytes());
        put(b, o + 16, &va.to_le_bytes());
        put(b, o + 24, &va.to_le_bytes());
        put(b, o + 32, &filesz.to_le_bytes());
        put(b, o + 40, &memsz.to_le_bytes());
        put(b, o + 48, &0x10000u64.to_le_bytes());
    };
    ph(&mut b, 0, 1, 5, 0, base, 0x200, 0x200); // R-X
    ph(&mut b, 1, 1, 6, 0x200, base + 0x10200, 0x100, 0x3000); // RW + bss
    ph(&mut b, 2, 7, 4, 0x200, base + 0x10200, 0x10, 0x20); // TLS
    ph(&mut b, 3, 0x6474e551, 6, 0, 0, 0, 0); // GNU_STACK RW
    put(&mut b, 0x100, &0xd503201fu32.to_le_bytes()); // nop at the entry
    b.resize(0x300, 0);
    put(&mut b, 0x200, b"DATA");
    if pie {
        // PT_DYNAMIC in the data segment at file 0x240: DT_RELA, DT_RELASZ, DT_RELAENT, DT_NULL;
        // the relocation table at file 0x280 (vaddr 0x10280).
        ph(&mut b, 4, 2, 6, 0x240, 0x10240, 0x40, 0x40);
        let dynv: [(u64, u64); 4] = [(7, 0x10280), (8, 24), (9, 24), (0, 0)];
        for (i, (t, v)) in dynv.iter().enumerate() {
            put(&mut b, 0x240 + 16 * i, &t.to_le_bytes());
            put(&mut b, 0x248 + 16 * i, &v.to_le_bytes());
        }
        put(&mut b, 0x280, &0x10208u64.to_le_bytes()); // r_offset
        put(&mut b, 0x288, &1027u64.to_le_bytes()); // R_AARCH64_RELATIVE
        put(&mut b, 0x290, &0x100i64.to_le_bytes()); // addend: the entry
    }
    b
}

#[test]
fn plan_of_a_static_binary() {
    let p = LoadPlan::parse(&elf(false)).unwrap();
    assert!(!p.pie);
    assert_eq!(p.bias(), 0);
    assert_eq!(p.entry, 0x400100);
    assert_eq!(p.segments.len(), 2);
    assert_eq!(p.segments[0].prot.0, 5);
    assert_eq!(p.segments[1].prot.0, 3);
    assert_eq!(p.phdr, 0x400040, "no PT_PHDR: first PT_LOAD + e_phoff");
    assert_eq!(p.tls.unwrap().memsz, 0x20);
    assert!(!p.exec_stack);
    assert!(p.relative.is_empty());
}

#[test]
fn static_pie_is_placed_and_relocated() {
    let data = elf(true);
    let p = LoadPlan::parse(&data).unwrap();
    assert!(p.pie);
    assert_eq!(p.relative, [(0x10208, 0x100)]);
    let bias = p.bias();
    assert_eq!(bias, PIE_BASE);
    let layout = layout(&p, 1 << 20, 1 << 16).unwrap();
    assert_eq!(layout.brk_start, PIE_BASE + 0x14000);
    let mut env = FakePlatform::new();
    let mut mm = MemoryMap::new(layout);
    load(&mut env, &mut mm, &p, &data, bias, &[]).unwrap();
    assert_eq!(env.read_u64(PIE_BASE + 0x10208).unwrap(), PIE_BASE + 0x100, "relocated");
    let mut d = [0u8; 4];
    env.read(PIE_BASE + 0x10200, &mut d).unwrap();
    assert_eq!(&d, b"DATA");
    assert_eq!(env.read_u64(PIE_BASE + 0x12ff8).unwrap(), 0, "bss is zero");
    assert_eq!(mm.lookup(PIE_BASE + 0x100).unwrap().prot.0, 5);
    assert_eq!(mm.lookup(PIE_BASE + 0x10200).unwrap().prot.0, 3);
    assert!(mm.lookup(PIE_BASE + 0x14000).is_none());
    let aux = auxv(&p, bias, 1000, 100, HWCAP_A57);
    assert!(aux.contains(&(AT_PHDR, PIE_BASE + 0x40)));
    assert!(aux.contains(&(AT_ENTRY, PIE_BASE + 0x100)));
    assert!(aux.contains(&(AT_UID, 1000)) && aux.contains(&(AT_EGID, 100)));
}

#[test]
fn rejects_what_it_cannot_start() {
    let mut d = elf(false);
    d[18] = 62; // EM_X86_64
    assert_eq!(LoadPlan::parse(&d), Err(LoadError::NotAarch64));
    let mut d = elf(false);
    put(&mut d, 64 + 56 * 3, &3u32.to_le_bytes()); // GNU_STACK -> an empty PT_INTERP
    assert_eq!(LoadPlan::parse(&d), Err(LoadError::Malformed("empty PT_INTERP")));
    assert!(LoadPlan::parse(b"\x7fELF").is_err());
    let mut d = elf(false);
    put(&mut d, 64 + 32, &0x10_0000u64.to_le_bytes()); // filesz beyond the file
    put(&mut d, 64 + 40, &0x10_0000u64.to_le_bytes());
    assert!(matches!(LoadPlan::parse(&d), Err(LoadError::Malformed(_))));
}

#[test]
fn initial_stack_layout() {
    let mut env = FakePlatform::new();
    let top = 0x10_0000u64;
    env.mem.add(top - 0x4000, 0x4000);
    let argv: [&[u8]; 2] = [b"/hello", b"x"];
    let envp: [&[u8]; 1] = [b"HELLO=WORLD"];
    let aux = [(AT_PAGESZ, 4096), (AT_UID, 0)];
    let info = StackInfo { argv: &argv, envp: &envp, execfn: b"/hello", random: [7; 16], auxv: &aux };
    let sp = build_stack(&mut env, top, &info).unwrap();
    assert_eq!(sp % 16, 0);
    let w = |env: &mut FakePlatform, i: u64| env.read_u64(sp + 8 * i).unwrap();
    assert_eq!(w(&mut env, 0), 2, "argc");
    let a0 = w(&mut env, 1);
    assert_eq!(env.read_cstr(a0, 100).unwrap(), b"/hello");
    let a1 = w(&mut env, 2);
    assert_eq!(env.read_cstr(a1, 100).unwrap(), b"x");
    assert_eq!(w(&mut env, 3), 0);
    let e0 = w(&mut env, 4);
    assert_eq!(env.read_cstr(e0, 100).unwrap(), b"HELLO=WORLD");
    assert_eq!(w(&mut env, 5), 0);
    let mut i = 6;
    let mut seen = Vec::new();
    loop {
        let (k, v) = (w(&mut env, i), w(&mut env, i + 1));
        i += 2;
        if k == AT_NULL {
            break;
        }
        seen.push((k, v));
    }
    assert_eq!(&seen[..2], &aux);
    let random = seen.iter().find(|e| e.0 == AT_RANDOM).unwrap().1;
    let mut r = [0u8; 16];
    env.read(random, &mut r).unwrap();
    assert_eq!(r, [7; 16]);
    let execfn = seen.iter().find(|e| e.0 == AT_EXECFN).unwrap().1;
    assert_eq!(env.read_cstr(execfn, 100).unwrap(), b"/hello");
    assert!(a0 < top && random + 16 <= top);
}
