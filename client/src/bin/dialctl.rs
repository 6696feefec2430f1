//! `dialctl`: the dialkv command-line tool. Everything but the process exit lives in
//! [`dialkv_client::cli`].

fn main() {
    std::process::exit(dialkv_client::cli::main());
}
