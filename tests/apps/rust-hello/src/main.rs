//! Rust test app: args, env, files, directory listing, a HashMap (random keys), big
//! allocations, and an exit status of 7.
use std::collections::HashMap;

fn main() {
    for (i, a) in std::env::args().enumerate() {
        println!("argv[{i}] = {a}");
    }
    println!("HELLO = {:?}", std::env::var("HELLO").ok());
    for f in ["/foo.txt", "/bar.txt", "/missing.txt"] {
        match std::fs::read_to_string(f) {
            Ok(s) => print!("{f}: {s}"),
            Err(e) => println!("{f}: {:?}", e.kind()),
        }
    }
    let mut names: Vec<String> = std::fs::read_dir("/data")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    println!("/data: {names:?}");
    let md = std::fs::metadata("/data/a.txt").map(|m| (m.len(), m.is_file()));
    println!("metadata /data/a.txt: {md:?}");
    let mut m = HashMap::new();
    for i in 0..1000u32 {
        m.insert(i.to_string(), i);
    }
    let sum: u64 = m.values().map(|&v| u64::from(v)).sum();
    println!("hashmap sum {sum}");
    let v: Vec<u8> = vec![3; 32 << 20];
    println!("32 MiB vec sum {}", v.iter().map(|&b| u64::from(b)).sum::<u64>());
    println!("cwd {:?}", std::env::current_dir().ok());
    println!("exe {:?}", std::env::current_exe().ok());
    std::process::exit(7);
}
