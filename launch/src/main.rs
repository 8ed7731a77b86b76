fn main() -> anyhow::Result<()> {
    loho::main_logged(std::env::args())
}
