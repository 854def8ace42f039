fn main() {
    println!("mtrobust");
}
