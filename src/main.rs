fn main() {
    println!("wdyno {}", env!("CARGO_PKG_VERSION"));
}
