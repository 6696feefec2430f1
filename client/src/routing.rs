//! Which endpoint each attempt of a call goes to. Pure functions, so the decisions can be
//! unit-tested without servers; [`crate::Client`] keeps the state they read (the endpoint
//! list, the endpoint that last served a write, a round-robin counter).
//!
//! Any replica accepts every request (DESIGN.md §5): a backup forwards writes and
//! LINEARIZABLE reads to the primary itself. Sending them to the primary directly saves that
//! hop, so the client sends them to the endpoint that last served a write ([`Route::Primary`]).
//! Reads that any replica may serve (SEQUENTIAL, CAUSAL, BOUNDED_STALENESS, EVENTUAL) are
//! spread over the endpoints round robin, each call starting one endpoint further
//! ([`Route::Spread`]). Retries then move as [`crate::retry::decide`] says: to the primary a
//! `NOT_LEADER` answer names (added to the endpoints if it is not one of them), or on to the
//! next endpoint.

use crate::options::Level;
use crate::retry::{CallKind, Next};

/// The most endpoints a client holds: those it was built with plus primaries learned from
/// `NOT_LEADER` answers. Past it, a hint naming an unknown address is treated as "try
/// another endpoint", so a misconfigured cluster cannot grow the list without bound.
pub const MAX_ENDPOINTS: usize = 64;

/// Where a call starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// At the endpoint that last served a write (the primary, as far as the client knows).
    Primary,
    /// At the next endpoint in round-robin order.
    Spread,
}

/// The route of a call of `kind` at `level` (`None`: the namespace default, LINEARIZABLE).
/// Writes and LINEARIZABLE reads go to the primary; weaker reads are spread.
pub fn route(kind: CallKind, level: Option<Level>) -> Route {
    match (kind, level) {
        (
            CallKind::IdempotentWrite | CallKind::Write | CallKind::Transaction | CallKind::Commit,
            _,
        ) => Route::Primary,
        (CallKind::Read, None | Some(Level::Linearizable)) => Route::Primary,
        (
            CallKind::Read,
            Some(Level::Sequential | Level::Causal | Level::BoundedStaleness | Level::Eventual),
        ) => Route::Spread,
    }
}

/// The endpoint (an index into `up`, which says which endpoints are not known to be down)
/// a call on `route` starts at: `primary` (the endpoint that last served a write), or the
/// `ticket`-th in round-robin order (a counter the client advances per call) over the
/// endpoints that are up, or over all of them when none is.
pub fn first_endpoint(route: Route, up: &[bool], primary: usize, ticket: usize) -> usize {
    let n = up.len().max(1);
    match route {
        Route::Primary => primary % n,
        Route::Spread => {
            let live: Vec<usize> = (0..up.len()).filter(|&i| up[i]).collect();
            match live.len() {
                0 => ticket % n,
                k => live[ticket % k],
            }
        }
    }
}

/// The first endpoint from `start` on (wrapping) that is up; `start` when none is.
fn first_up(up: &[bool], start: usize) -> usize {
    let n = up.len().max(1);
    (0..n)
        .map(|k| (start + k) % n)
        .find(|&i| up.get(i).copied().unwrap_or(true))
        .unwrap_or(start % n)
}

/// Where the next attempt goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The endpoint at this index.
    To(usize),
    /// A new endpoint at this address (`host:port`): add it to the list, then go there.
    Add(String),
}

/// Where the attempt after one at `current` goes, given the retry's [`Next`], the
/// `endpoints` (addresses as given to the client, in order; [`same_address`] compares them)
/// and which of them are `up` (not known to be down). "Another endpoint" is the next one
/// that is up, or simply the next one when no other is up.
pub fn next_endpoint(current: usize, endpoints: &[String], up: &[bool], next: &Next) -> Step {
    let n = endpoints.len().max(1);
    let after = (current + 1) % n;
    let other = match first_up(up, after) {
        i if i == current % n => Step::To(after),
        i => Step::To(i),
    };
    match next {
        Next::Same => Step::To(current % n),
        Next::Other => other,
        Next::Leader(address) => match endpoints.iter().position(|e| same_address(e, address)) {
            Some(i) => Step::To(i),
            None if endpoints.len() < MAX_ENDPOINTS => Step::Add(address.clone()),
            None => other,
        },
    }
}

/// Whether two endpoint addresses name the same `host:port`: compared without the
/// `http://` scheme, a trailing `/`, or ASCII case. (Different names of one host, such as
/// `localhost` and `127.0.0.1`, are not recognised: that only costs a second connection.)
pub fn same_address(a: &str, b: &str) -> bool {
    authority(a).eq_ignore_ascii_case(authority(b))
}

/// The `host:port` part of an endpoint address.
fn authority(address: &str) -> &str {
    let address = address.trim();
    let address = address.split_once("://").map_or(address, |(_, rest)| rest);
    address.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn writes_and_linearizable_reads_go_to_the_primary() {
        for kind in [
            CallKind::IdempotentWrite,
            CallKind::Write,
            CallKind::Transaction,
            CallKind::Commit,
        ] {
            assert_eq!(route(kind, None), Route::Primary);
            for level in Level::ALL {
                assert_eq!(route(kind, Some(level)), Route::Primary, "{kind:?} {level}");
            }
        }
        assert_eq!(route(CallKind::Read, None), Route::Primary);
        assert_eq!(
            route(CallKind::Read, Some(Level::Linearizable)),
            Route::Primary
        );
        for level in [
            Level::Sequential,
            Level::Causal,
            Level::BoundedStaleness,
            Level::Eventual,
        ] {
            assert_eq!(route(CallKind::Read, Some(level)), Route::Spread, "{level}");
        }
    }

    #[test]
    fn primary_calls_start_at_the_remembered_endpoint_and_reads_rotate() {
        let all_up = [true; 3];
        assert_eq!(first_endpoint(Route::Primary, &all_up, 2, 17), 2);
        assert_eq!(first_endpoint(Route::Primary, &all_up, 5, 0), 2);
        let starts: Vec<usize> = (0..6)
            .map(|t| first_endpoint(Route::Spread, &all_up, 1, t))
            .collect();
        assert_eq!(starts, [0, 1, 2, 0, 1, 2]);
        assert_eq!(first_endpoint(Route::Spread, &[true], 0, 41), 0);
        // A degenerate list never divides by zero.
        assert_eq!(first_endpoint(Route::Spread, &[], 0, 3), 0);
    }

    #[test]
    fn reads_skip_endpoints_that_are_down_unless_all_are() {
        let one_down = [false, true, true];
        let starts: Vec<usize> = (0..6)
            .map(|t| first_endpoint(Route::Spread, &one_down, 0, t))
            .collect();
        assert_eq!(starts, [1, 2, 1, 2, 1, 2]);
        // The primary is where writes last succeeded, down or not (a failed write moves it).
        assert_eq!(first_endpoint(Route::Primary, &one_down, 0, 1), 0);
        let starts: Vec<usize> = (0..3)
            .map(|t| first_endpoint(Route::Spread, &[false; 3], 0, t))
            .collect();
        assert_eq!(starts, [0, 1, 2]);
        let list = endpoints(&["a:1", "b:1", "c:1"]);
        assert_eq!(
            next_endpoint(0, &list, &[true, false, true], &Next::Other),
            Step::To(2)
        );
        assert_eq!(
            next_endpoint(0, &list, &[true, false, false], &Next::Other),
            Step::To(1)
        );
        // A leader hint is followed even to an endpoint that was down: it is back, or the
        // retry after it moves on.
        assert_eq!(
            next_endpoint(0, &list, &[true, false, true], &Next::Leader("b:1".into())),
            Step::To(1)
        );
    }

    #[test]
    fn retries_move_on_stay_or_follow_the_leader_hint() {
        let list = endpoints(&["10.0.0.1:7401", "http://10.0.0.2:7401/", "10.0.0.3:7401"]);
        let all_up = [true; 3];
        assert_eq!(next_endpoint(0, &list, &all_up, &Next::Other), Step::To(1));
        assert_eq!(next_endpoint(2, &list, &all_up, &Next::Other), Step::To(0));
        assert_eq!(next_endpoint(1, &list, &all_up, &Next::Same), Step::To(1));
        assert_eq!(
            next_endpoint(0, &list, &all_up, &Next::Leader("10.0.0.2:7401".into())),
            Step::To(1)
        );
        assert_eq!(
            next_endpoint(0, &list, &all_up, &Next::Leader("10.0.0.3:7401".into())),
            Step::To(2)
        );
        assert_eq!(
            next_endpoint(0, &list, &all_up, &Next::Leader("10.0.0.4:7401".into())),
            Step::Add("10.0.0.4:7401".into())
        );
        let single = endpoints(&["a:1"]);
        assert_eq!(
            next_endpoint(0, &single, &[true], &Next::Other),
            Step::To(0)
        );
    }

    #[test]
    fn a_full_endpoint_list_takes_no_new_hint() {
        let list: Vec<String> = (0..MAX_ENDPOINTS).map(|i| format!("h{i}:1")).collect();
        let up = vec![true; MAX_ENDPOINTS];
        assert_eq!(
            next_endpoint(3, &list, &up, &Next::Leader("new:1".into())),
            Step::To(4)
        );
        assert_eq!(
            next_endpoint(3, &list, &up, &Next::Leader("h9:1".into())),
            Step::To(9)
        );
    }

    #[test]
    fn addresses_compare_without_scheme_slash_or_case() {
        assert!(same_address("127.0.0.1:7201", "http://127.0.0.1:7201/"));
        assert!(same_address(" DB1:7401", "db1:7401"));
        assert!(same_address("https://db1:7401", "db1:7401"));
        assert!(!same_address("db1:7401", "db1:7402"));
        assert!(!same_address("db1:7401", "db2:7401"));
    }
}
