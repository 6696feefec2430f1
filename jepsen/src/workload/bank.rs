//! The bank workload's accounts (Jepsen's `bank`).
//!
//! [`ACCOUNTS`] accounts (`bank/a0`, `bank/a1`, ...) start with [`INITIAL_BALANCE`] each,
//! written by one `init` transaction before the clients start. Clients then run `transfer`s
//! (a transaction that reads two accounts and writes both, moving 1–5 units, refused when the
//! source has too little) and `read`s (a read-only transaction that scans every account).
//!
//! History values: `init` → `{account: balance}`; `transfer` → invoked with
//! `{"from", "to", "amount"}`, ok with the balances read added (`"read"`); `read` and
//! `final-read` (one per node after the quiet period) → ok with `{account: balance}`.
//!
//! The checker is the referee's: [`check`] (`dialkv_consistency::bank::check`).

use std::collections::BTreeMap;

pub use dialkv_consistency::bank::check;

/// How many accounts.
pub const ACCOUNTS: usize = 5;
/// Every account's balance after `init`.
pub const INITIAL_BALANCE: i64 = 20;
/// The largest transfer.
pub const MAX_TRANSFER: i64 = 5;
/// The key prefix of the accounts.
pub const PREFIX: &str = "bank/";
/// The first key after every account key (`PREFIX` with its last byte incremented).
pub const PREFIX_END: &str = "bank0";

/// The key of account `i`.
pub fn account(i: usize) -> String {
    format!("{PREFIX}a{i}")
}

/// The balances `init` writes.
pub fn initial_balances() -> BTreeMap<String, i64> {
    (0..ACCOUNTS)
        .map(|i| (account(i), INITIAL_BALANCE))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_under_the_prefix() {
        let all = initial_balances();
        assert_eq!(all.len(), ACCOUNTS);
        assert!(all
            .keys()
            .all(|k| k.as_str() >= PREFIX && k.as_str() < PREFIX_END));
    }
}
